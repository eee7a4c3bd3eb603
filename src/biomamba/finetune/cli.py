"""CLI commands of the finetune stage (mounted by biomamba.cli.main): `biomamba finetune RECIPE [flags]`."""

from __future__ import annotations

from pathlib import Path

import typer

from biomamba.config.command_line import PRECEDENCE, command_line_recipe, set_option

HELP = """Fine-tune a model on a task and evaluate it before and after.

Tasks (finetune.task in the recipe): sft-qa (PubMedQA, BioASQ yes/no, MedQA, MedMCQA, any question/answer
JSON lines; loss on the answer only), clinical-generation (MIMIC-IV-Note, MTSamples, ACI-Bench: discharge
summary or note completion, scored with ROUGE), mc-classifier (BioMedLM's multiple-choice head) and
seq-classifier (context + question -> yes/no/maybe). Full fine-tuning, LoRA or QLoRA (finetune.method);
training runs in the same loop as pretraining (the train: section: lr, batch sizes, steps, early stopping).

Writes RUN/final (a plain model directory, adapter merged; not with finetune.lora.merge: false), RUN/adapter
(LoRA), RUN/results.json and the trainer's checkpoints and metrics.jsonl, RUN defaulting to
runs/<recipe name>/finetune. User guide: docs/finetune.md.

Example: biomamba finetune recipes/finetune-biomamba-pubmedqa.yaml --base-model runs/cpt/final
"""


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""

    @app.command("finetune", help=HELP, epilog=PRECEDENCE)
    def finetune_command(
        recipe: Path = typer.Argument(
            ..., help="Recipe YAML with a finetune: section (see recipes/finetune-*.yaml)."
        ),
        output_dir: Path | None = typer.Option(
            None, "--output-dir", "-o", help="Run directory (default runs/<recipe name>/finetune)."
        ),
        base_model: str | None = typer.Option(
            None, help="Model directory or hub name (finetune.base_model)."
        ),
        method: str | None = typer.Option(None, help="full, lora or qlora (finetune.method)."),
        max_steps: int | None = typer.Option(None, help="Optimizer steps (train.max_steps)."),
        lr: float | None = typer.Option(None, help="Peak learning rate (train.lr)."),
        on_bad_record: str | None = typer.Option(
            None, help="error (stop at the first malformed record) or skip (count and go on)."
        ),
        resume: bool = typer.Option(
            False, "--resume", help="Continue from the newest checkpoint in the run dir."
        ),
        set_: list[str] = set_option("finetune.lora.r=16"),
    ) -> None:
        from biomamba.finetune.run import finetune

        flags = {
            "finetune.base_model": base_model,
            "finetune.method": method,
            "finetune.on_bad_record": on_bad_record,
            "train.max_steps": max_steps,
            "train.lr": lr,
        }
        data = command_line_recipe(recipe, flags, set_)
        results = finetune(data, source=str(recipe), output_dir=output_dir, resume=resume, log=typer.echo)
        typer.echo(f"results: {results.get('final_model', '')} and results.json beside it")
