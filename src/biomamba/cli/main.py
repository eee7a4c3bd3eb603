"""Entry point of the `biomamba` console script.

Grammar (kept the same everywhere):
- `biomamba STAGE VERB [ARGS] [--recipe FILE] [--flag ...] [--set section.key=value ...]` for stages with
  several verbs (data, tokenizer, models, eval), and `biomamba COMMAND [RECIPE|MODEL] [flags]` for stages
  with one action (train, finetune, quantize, merge, export, generate, serve, report, demo);
- every flag may also come from the recipe, and the flag wins;
- outputs go under `--output-dir` (default `runs/<recipe name>/...`), written atomically;
- a user error prints ONE line `error: <file>: <key>: <problem>` on stderr and exits with status 2.

Each stage package has a `cli.py` with `register(app)`, so stages add commands without touching this file.
Heavy imports (torch, transformers) happen inside commands, keeping `--help` fast.
"""

from __future__ import annotations

import importlib
import sys

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
    ) -> None:
        if version:
            typer.echo(f"biomamba {__version__}")
            raise typer.Exit()

    for module_name in STAGE_CLI_MODULES:
        importlib.import_module(module_name).register(app)
    return app


def run(argv: list[str] | None = None) -> None:
    """Run the CLI, turning user errors into one line and exit status 2."""
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
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise  # a bug, not a user error: keep the traceback
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
