"""Training telemetry: JSON-lines metrics, optional TensorBoard, a live progress line, and MFU.

`metrics.jsonl` has one object per logged step (`step`, `loss`, `lr`, `grad_norm`, `tokens`, `tokens_per_s`,
`mfu` when the device's peak is known, ...) and one per evaluation (keys prefixed by the evaluator, e.g.
`heldout/pubmed/ppl`). On resume the lines after the checkpoint's step are dropped, so the file always reads
as one consistent run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

# Dense bf16 peak TFLOP/s per device (tensor cores, no sparsity), for MFU.
_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0}


def detect_peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in _PEAK_TFLOPS.items():
        if key in name:
            return value
    return None


def flops_per_token(model: nn.Module, seq_len: int, family: str | None = None) -> float:
    """Training FLOPs per token: 6 x parameters, plus attention's 12 x layers x d_model x seq for transformers.

    The attention term follows the PaLM appendix, for families whose `FamilySpec.attention` says so (None:
    assume attention); Mamba2's scan is linear in the sequence and its cost is counted in the parameter term
    (the convention of the Mamba2 benchmarks).
    """
    from biomamba.models import family_named

    params = sum(p.numel() for p in model.parameters())
    flops = 6.0 * params
    config = getattr(model, "config", None)
    if (family is None or family_named(family).attention) and config is not None:
        layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
        hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)
        if layers and hidden:
            flops += 12.0 * layers * hidden * seq_len
    return flops


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Keep only records with step <= max_step (used on resume)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by SIGKILL mid-write
        if record.get("step", 0) <= max_step:
            kept.append(line)
    from biomamba.utils.atomic import write_text

    write_text(path, "".join(f"{line}\n" for line in kept))


class MetricsLogger:
    """Rank-0 sink for metrics: jsonl always, TensorBoard and the rich progress line optionally."""

    def __init__(
        self,
        path: Path,
        *,
        enabled: bool,
        total_steps: int,
        tensorboard_dir: Path | None = None,
        progress: bool = True,
        start_step: int = 0,
    ) -> None:
        self.enabled = enabled
        self.path = path
        self._handle = None
        self._tb = None
        self._progress = None
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("a", encoding="utf-8")
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                from biomamba.errors import BiomambaError

                raise BiomambaError(
                    "train.tensorboard is true but the tensorboard package is not installed "
                    "(pip install tensorboard)"
                ) from exc
            self._tb = SummaryWriter(str(tensorboard_dir))
        if progress:
            self._start_progress(total_steps, start_step)

    def _start_progress(self, total_steps: int, start_step: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]} lr {task.fields[lr]} {task.fields[speed]} tok/s"),
            TextColumn("MFU {task.fields[mfu]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            transient=False,
            console=Console(stderr=True),  # stdout stays for results (the CLI's summary line)
        )
        self._task = self._progress.add_task(
            "train", total=total_steps, completed=start_step, loss="-", lr="-", speed="-", mfu="-"
        )
        self._progress.start()

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        assert self._handle is not None
        self._handle.write(json.dumps(record, allow_nan=True) + "\n")
        self._handle.flush()
        step = int(record.get("step", 0))
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float) and math.isfinite(value):
                    self._tb.add_scalar(key, value, step)
        if self._progress is not None and "loss" in record:
            mfu = record.get("mfu")
            self._progress.update(
                self._task,
                completed=step,
                loss=f"{record['loss']:.4f}",
                lr=f"{record.get('lr', 0):.2e}",
                speed=f"{record.get('tokens_per_s', 0):,.0f}",
                mfu="-" if mfu is None else f"{100 * mfu:.1f}%",
            )

    def message(self, text: str) -> None:
        """A line above the progress bar (warnings, evaluations, checkpoints)."""
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.console.print(text)
        else:
            import sys

            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._handle is not None:
            self._handle.close()
            self._handle = None
