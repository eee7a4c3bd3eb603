"""`biomamba demo`: the whole pipeline on a tiny Mamba2 and a synthetic corpus, in minutes on a CPU."""

from __future__ import annotations

from pathlib import Path

import typer

from biomamba.config.command_line import PRECEDENCE, command_line_overrides, set_option

DEMO_HELP = "\n\n".join(
    [
        "The whole BioMamba recipe at toy scale, in a few minutes on a CPU (SYNTHETIC demo data).",
        "Builds the 80/10/10 PubMed/C4/Wikipedia mixture with held-out splits, pretrains a tiny Mamba2 on "
        "general text with a quarter PubMed-style text, continues pretraining it on the mixture, evaluates "
        "held-out perplexity per domain and multiple-choice accuracy before and after, and writes results.json, "
        "report.md and curves.png (default: runs/demo/).",
        "Its settings are the recipe's `demo:` section over DemoConfig's defaults (biomamba.demo.config); "
        "results.json records the ones a run used.",
    ]
)


def register(app: typer.Typer) -> None:
    """Add `biomamba demo` to the root app."""

    @app.command("demo", help=DEMO_HELP, epilog=PRECEDENCE)
    def demo(
        recipe: Path = typer.Option(Path("recipes/demo.yaml"), "--recipe", "-r", help="The demo recipe."),
        output_dir: Path = typer.Option(None, "--output-dir", "-o", help="Default: the recipe's output_dir."),
        base_steps: int = typer.Option(None, help="Steps of the base pretraining (default: DemoConfig's)."),
        continued_steps: int = typer.Option(
            None, help="Steps of the continued pretraining on the mixture (default: DemoConfig's)."
        ),
        set_: list[str] = set_option("train.seq_len=128"),
    ) -> None:
        import os

        from biomamba.demo.run import PASSIVE_WAIT, run_demo

        os.environ.setdefault(*PASSIVE_WAIT)  # before torch loads: OpenMP reads it once (DemoConfig.threads)

        flags = {"demo.base.max_steps": base_steps, "demo.continued.max_steps": continued_steps}
        overrides = command_line_overrides(flags, set_)
        run_demo(recipe, output_dir=output_dir, overrides=overrides, say=typer.echo)
