"""Schema of the `train:` recipe section (registered as `biomamba.train.config:TrainConfig`).

One schema serves pretraining from scratch, continued pretraining and (built programmatically by the finetune
stage) supervised fine-tuning, because they share one loop. Impossible values are validator errors so the user
gets one line naming the key instead of a crash hours into a run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from biomamba.config import Section

NoDecayKind = Literal["norm", "bias", "embedding"]


class EarlyStoppingConfig(Section):
    """Stop when an evaluation metric has not improved for `patience` evaluations.

    `metric` is a key the evaluators return, e.g. `heldout/pubmed/ppl` (perplexity on the held-out PubMed
    split) or, for fine-tuning, `val/accuracy`.
    """

    metric: str = "heldout/pubmed/ppl"
    mode: Literal["min", "max"] = "min"
    patience: int = Field(3, ge=1)
    min_delta: float = Field(0.0, ge=0.0)


class TrainConfig(Section):
    """Everything the training loop needs besides the model architecture (which is the `model:` section)."""

    # --- what to train on, and from what -------------------------------------------------------------------
    corpus: Path | None = Field(
        None,
        description="Corpus directory written by `biomamba data build` (manifest.json, train/, heldout/).",
    )
    base_model: str | None = Field(
        None,
        description="Checkpoint to continue pretraining from: a local model directory, or a hub name when "
        "online. Leave empty to train from scratch with the architecture of the `model:` section.",
    )
    architecture: str | dict[str, Any] | None = Field(
        None,
        description="From scratch only: a Mamba2 preset name (e.g. mamba2-130m), Mamba2 config fields, or a "
        "transformers config ({model_type: gpt2, n_embd: ..., ...}). vocab_size defaults to the corpus's.",
    )
    tokenizer: str | None = Field(
        None, description="Tokenizer directory saved with every checkpoint (default: the base model's)."
    )
    data_source: str | None = Field(
        None, description="Human note: where the corpus comes from (for the log)."
    )

    # --- batch and length -------------------------------------------------------------------------------------
    seq_len: int = Field(1024, ge=2)
    micro_batch_size: int = Field(8, ge=1, description="Sequences per forward pass on one process.")
    global_batch_size: int = Field(
        8,
        ge=1,
        description="Sequences per optimizer step over all processes (= micro x accumulation x world).",
    )
    max_steps: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1, description="Alternative to max_steps: tokens to train on.")

    # --- optimizer ---------------------------------------------------------------------------------------------
    lr: float = Field(3e-4, gt=0.0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(1e-8, gt=0.0)
    weight_decay: float = Field(0.1, ge=0.0)
    no_decay: list[NoDecayKind] = Field(default_factory=lambda: ["norm", "bias", "embedding"])
    clip_grad_norm: float | None = Field(1.0, gt=0.0)
    layer_lr_decay: float = Field(1.0, gt=0.0, le=1.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    ema_decay: float | None = Field(None, gt=0.0, lt=1.0)

    # --- schedule ---------------------------------------------------------------------------------------------
    schedule: Literal["cosine", "wsd", "constant"] = "cosine"
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    warmup_steps: int | None = Field(None, ge=0, description="Overrides warmup_ratio when set.")
    stable_ratio: float = Field(0.65, ge=0.0, le=1.0, description="WSD only: fraction of steps at peak lr.")
    min_lr_ratio: float = Field(
        0.1, ge=0.0, le=1.0, description="Final lr as a fraction of peak (cosine, wsd)."
    )

    # --- numerics and speed -----------------------------------------------------------------------------------
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto",
        description="bf16 autocast with fp32 master weights, or fp32; auto = bf16 on CUDA, fp32 on CPU.",
    )
    activation_checkpointing: bool = False
    compile: bool = False
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N (torchrun sets the rank's GPU).")
    distributed: Literal["auto", "none", "ddp", "fsdp"] = Field(
        "auto", description="Under torchrun: ddp or fsdp (FSDP2, one shard unit per block); auto = ddp."
    )
    peak_tflops: float | None = Field(
        None,
        gt=0.0,
        description="Peak dense bf16 TFLOP/s of one device for MFU; auto-detected for H100/A100.",
    )
    seed: int | None = Field(None, description="Default: the recipe's top-level seed, else 0.")

    # --- evaluation, checkpoints, logging ---------------------------------------------------------------------
    eval_every: int | None = Field(None, ge=1, description="Held-out perplexity every N steps (None: never).")
    eval_tokens: int = Field(65536, ge=2, description="Tokens per held-out domain per evaluation.")
    eval_domains: list[str] | None = Field(None, description="Held-out domains to evaluate (default: all).")
    early_stopping: EarlyStoppingConfig | None = None
    save_every: int | None = Field(
        None, ge=1, description="Checkpoint every N steps (and always at the end)."
    )
    keep_last: int = Field(3, ge=1, description="Checkpoints kept on disk (older ones are deleted).")
    keep_best: bool = Field(False, description="Also keep checkpoints/best (needs early_stopping.metric).")
    log_every: int = Field(1, ge=1)
    tensorboard: bool = False
    progress: bool = True
    max_nonfinite: int = Field(5, ge=1, description="Abort after this many non-finite losses in a row.")

    @model_validator(mode="after")
    def _check_consistency(self) -> TrainConfig:
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(
                f"global_batch_size ({self.global_batch_size}) must be a multiple of micro_batch_size "
                f"({self.micro_batch_size})"
            )
        if self.schedule == "wsd" and self.warmup_steps is None and self.warmup_ratio + self.stable_ratio > 1:
            raise ValueError(
                f"warmup_ratio + stable_ratio must be <= 1 (got {self.warmup_ratio} + {self.stable_ratio})"
            )
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be in [0, 1) (got {self.betas})")
        if self.base_model is not None and self.architecture is not None:
            raise ValueError(
                "set base_model (continue a checkpoint) or architecture (from scratch), not both"
            )
        if self.keep_best and self.early_stopping is None:
            raise ValueError("keep_best needs an early_stopping section naming the metric")
        return self

    def total_steps(self) -> int:
        """Optimizer steps of the run: max_steps, else max_tokens over the tokens of one global batch."""
        if self.max_steps is not None:
            return self.max_steps
        if self.max_tokens is not None:
            return max(1, math.ceil(self.max_tokens / (self.global_batch_size * self.seq_len)))
        raise ValueError("set train.max_steps or train.max_tokens")

    def accumulation(self, world_size: int) -> int:
        """Micro-batches per optimizer step on each process, keeping the global batch fixed at any world size."""
        per_step = self.micro_batch_size * world_size
        if self.global_batch_size % per_step:
            raise ValueError(
                f"train.global_batch_size ({self.global_batch_size}) is not a multiple of micro_batch_size x "
                f"world size ({self.micro_batch_size} x {world_size})"
            )
        return self.global_batch_size // per_step
