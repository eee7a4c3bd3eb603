"""`biomamba train RECIPE`: pretraining and continued pretraining (mounted by biomamba.cli.main)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import typer

from biomamba.config.command_line import PRECEDENCE, command_line_recipe, set_option

HELP = """Pretrain or continue pretraining a model on a packed corpus, as the recipe's train: section says.

Writes OUTPUT_DIR/checkpoints/step-N/ (atomic; the last train.keep_last kept), OUTPUT_DIR/final/ (a model
directory for `biomamba eval` / `biomamba finetune`), OUTPUT_DIR/metrics.jsonl and OUTPUT_DIR/summary.json.
Ctrl-C or SIGTERM saves a checkpoint and stops; `--resume` continues exactly where it stopped.
Multi-GPU / multi-node: `torchrun --nproc_per_node 8 -m biomamba train RECIPE` (see docs/train.md).

Examples:
  biomamba train recipes/biomamba-130m.yaml
  biomamba train recipes/biomamba-130m.yaml --resume --set train.eval_every=500
  torchrun --nproc_per_node 8 -m biomamba train recipes/biomistral-7b.yaml
"""


def register(app: typer.Typer) -> None:
    """Add `biomamba train` to the root app."""

    @app.command("train", help=HELP, epilog=PRECEDENCE, no_args_is_help=True)
    def train_command(
        recipe: Path = typer.Argument(..., help="Recipe YAML with a train: section (see recipes/)."),
        output_dir: Path | None = typer.Option(
            None, "--output-dir", "-o", help="Run directory (default: runs/<recipe name>/train)."
        ),
        resume: bool = typer.Option(
            False, "--resume", help="Continue from the newest checkpoint in the run directory (exact)."
        ),
        resume_from: Path | None = typer.Option(
            None, help="Continue from this checkpoint directory instead."
        ),
        corpus: Path | None = typer.Option(None, help="Corpus directory (train.corpus)."),
        base_model: str | None = typer.Option(None, help="Checkpoint to continue from (train.base_model)."),
        max_steps: int | None = typer.Option(None, help="Optimizer steps (train.max_steps)."),
        lr: float | None = typer.Option(None, help="Peak learning rate (train.lr)."),
        device: str | None = typer.Option(None, help="auto, cpu, cuda (train.device)."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No live progress line (logs only)."),
        set_: list[str] = set_option("train.warmup_ratio=0.05"),
    ) -> None:
        from biomamba.train.run import train

        flags = {
            "train.corpus": str(corpus) if corpus else None,
            "train.base_model": base_model,
            "train.max_steps": max_steps,
            "train.lr": lr,
            "train.device": device,
            "train.progress": False if no_progress else None,
        }
        raw = command_line_recipe(recipe, flags, set_)
        raw.setdefault("name", recipe.stem)
        summary = train(raw, output_dir=output_dir, resume=resume_from or resume, source=str(recipe))
        loss = summary.metrics.get("loss")
        typer.echo(
            f"{summary.stopped}: step {summary.steps}, {summary.tokens:,} tokens"
            + (f", loss {loss:.4f}" if isinstance(loss, float) else "")
            + f"; model: {summary.final_dir}"
        )
        if summary.stopped.startswith("signal:"):
            # sys.exit, not typer.Exit: the entry point runs click with standalone_mode=False, where an Exit's
            # code becomes a return value and the process would exit 0; a scheduler must see 128 + signal
            sys.exit(128 + int(signal.Signals[summary.stopped.split(":", 1)[1]]))
