"""Entry point of the `biomamba` console script.

Grammar (kept the same everywhere):
- `biomamba STAGE VERB [ARGS] [--recipe FILE] [--flag ...] [--set section.key=value ...]` for stages with
  several verbs (data, tokenizer, models, eval), and `biomamba COMMAND [RECIPE|MODEL] [flags]` for stages
  with one action (train, finetune, quantize, merge, export, generate, serve, report, demo);
- every flag may also come from the recipe; a flag beats `--set`, which beats the recipe
  (biomamba.config.command_line, docs/ARCHITECTURE.md);
- outputs go under `--output-dir` (default `runs/<recipe name>/...`), written atomically;
- a user error prints ONE line `error: <file>: <key>: <problem>` on stderr and exits with status 2.

Each stage package has a `cli.py` with `register(app)`, so stages add commands without touching this file.
Heavy imports (torch, transformers) happen inside commands, keeping `--help` fast.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import warnings

import typer

from biomamba import __version__
from biomamba.errors import BiomambaError

STAGE_CLI_MODULES = (  # in pipeline order, which is the order of `biomamba --help`
    "biomamba.demo.cli",
    "biomamba.config.cli",
    "biomamba.data.cli",
    "biomamba.tokenizer.cli",
    "biomamba.models.cli",
    "biomamba.train.cli",
    "biomamba.eval.cli",
    "biomamba.finetune.cli",
    "biomamba.compress.cli",
    "biomamba.serve.cli",
    "biomamba.report.cli",
)

HELP = "\n\n".join(  # one line per paragraph: rich keeps line breaks, so the terminal does the wrapping
    [
        "biomamba: adapt general language models to biomedicine, and measure what it gained and cost.",
        "Pipeline: corpus (data) -> tokenizer -> models -> train (continued pretraining) -> eval -> finetune "
        "-> quantize / merge -> export / generate / serve. Each stage reads and writes files on disk and is "
        "driven by a recipe file (recipes/); every flag can also come from the recipe, and the flag wins.",
        "Start with `biomamba demo`: the whole pipeline on a tiny Mamba2, in a few minutes on a CPU.",
    ]
)


# Libraries whose start-up notices (torchao's "Failed to load ..._C_mxfp8", torch's `_pytree` deprecation,
# transformers' "falling back to its reference PyTorch implementation") are not news to a biomamba user.
THIRD_PARTY_LOGGERS = ("torch", "torchao", "transformers", "huggingface_hub", "accelerate", "datasets")
# Read when the library is first imported, so they also cover imports that happen inside a command.
QUIET_ENVIRONMENT = {
    "TORCH_LOGS": "-torch",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' "Loading weights" bar follows it
}
_quieted: dict[str, object] = {}


def quiet_third_party() -> None:
    """Keep third-party warnings and log notices out of normal output; `--verbose` shows them again.

    Only third-party output is held back: biomamba's own warnings and errors, and anything at ERROR level
    from the libraries, still reach stderr. Idempotent; `show_third_party_output` undoes it.
    """
    if _quieted:
        return
    _quieted["env"] = {name: os.environ.get(name) for name in QUIET_ENVIRONMENT}
    _quieted["levels"] = {name: logging.getLogger(name).level for name in THIRD_PARTY_LOGGERS}
    _quieted["filters"] = list(warnings.filters)
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for name in THIRD_PARTY_LOGGERS:  # torch resets its own logger's level on import: TORCH_LOGS covers that
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(?!biomamba\b)")


def show_third_party_output() -> None:
    """Undo `quiet_third_party` (the global `--verbose` flag)."""
    if not _quieted:
        return
    for name, value in _quieted.pop("env").items():  # type: ignore[attr-defined]
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    for name, level in _quieted.pop("levels").items():  # type: ignore[attr-defined]
        logging.getLogger(name).setLevel(level)
    warnings.filters[:] = _quieted.pop("filters")  # type: ignore[index]


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="biomamba",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",  # keeps the line breaks of examples; paragraphs are single lines
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback(invoke_without_command=True)
    def _root(
        version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
        verbose: bool = typer.Option(
            False, "--verbose", help="Also show third-party libraries' warnings and log notices."
        ),
    ) -> None:
        if verbose:
            show_third_party_output()
        if version:
            typer.echo(f"biomamba {__version__}")
            raise typer.Exit()

    for module_name in STAGE_CLI_MODULES:
        importlib.import_module(module_name).register(app)
    return app


def _click_exception_types() -> tuple[type[Exception], ...]:
    """Usage errors (unknown option, missing argument): click's, and those of the copy of click typer ships."""
    import click

    types: list[type[Exception]] = [click.exceptions.ClickException]
    with contextlib.suppress(ImportError):  # typer >= 0.25
        from typer._click.exceptions import ClickException as TyperClickException

        types.append(TyperClickException)
    return tuple(types)


def run(argv: list[str] | None = None) -> None:
    """Run the CLI, turning user errors into one line and exit status 2."""
    quiet_third_party()
    app = build_app()
    try:
        # Without standalone mode click returns a typer.Exit's code instead of exiting: keep it.
        code = app(args=argv, prog_name="biomamba", standalone_mode=False)
    except BiomambaError as exc:
        typer.echo("error: " + " ".join(str(exc).split()), err=True)  # one line, whatever the cause said
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        if isinstance(exc, _click_exception_types()):
            exc.show()
            sys.exit(exc.exit_code)
        raise  # a bug, not a user error: keep the traceback
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
