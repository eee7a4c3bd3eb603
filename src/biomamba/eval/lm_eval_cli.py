"""`python -m biomamba.eval.lm_eval_cli ARGS`: lm-eval's CLI with the "biomamba" model registered.

lm-eval discovers models only through its registry (no plugin entry point), so this wrapper imports the
adapter first and then hands the untouched arguments to lm-eval:

    python -m biomamba.eval.lm_eval_cli run --model biomamba --model_args pretrained=runs/x/final \\
        --tasks hellaswag --device cpu

(`run` is lm-eval 0.4.13's evaluation subcommand; `ls` and `validate` pass through the same way.)
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from lm_eval.__main__ import cli_evaluate

    import biomamba.eval.lm_eval_adapter  # noqa: F401  (registers --model biomamba)

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    main()
