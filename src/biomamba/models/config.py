"""Recipe schema of the `model:` section (registered as `biomamba.models.config:ModelConfig`).

Either load an existing model (``name_or_path``: a model directory in any supported format, or a hub name
when online) or build a fresh Mamba2 from a ``preset`` (130m, 370m, 780m, 1.3b, 2.7b, tiny) with optional
architecture overrides. Runtime settings (``RUNTIME_FIELDS``: dtype, chunk size, scan kernels, scan
recomputation) apply to both; all but the dtype are never saved with a checkpoint.

Example (YAML):

    model:
      preset: 130m          # or: name_or_path: state-spaces/mamba2-130m
      vocab_size: 32000     # overrides (from scratch only)
      dtype: bfloat16
      chunk_size: 256
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from biomamba.config.recipe import Section
from biomamba.models.kernels import KernelChoice

RUNTIME_FIELDS = ("dtype", "chunk_size", "kernels", "recompute_scan")  # how to run a model, not what it is
ARCH_FIELDS = (
    "d_model",
    "n_layer",
    "vocab_size",
    "d_state",
    "d_conv",
    "expand",
    "headdim",
    "ngroups",
    "tie_embeddings",
    "pad_vocab_size_multiple",
)


class ModelConfig(Section):
    """Which model to use: an existing checkpoint, or a Mamba2 preset built from scratch."""

    name_or_path: str | None = Field(
        None, description="Model directory (hf/mamba-ssm/transformers format) or hub name when online."
    )
    preset: str | None = Field(
        None, description="Mamba2 preset for a fresh model: 130m, 370m, 780m, 1.3b, 2.7b, tiny."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype after loading (auto: as stored; fresh models are float32)."
    )
    chunk_size: int | None = Field(
        None, ge=1, description="SSD chunk length (Mamba2 only); changes speed/memory, not results."
    )
    kernels: KernelChoice = Field(
        "auto",
        description="Mamba2 scan: torch, torch_compile, triton (mamba-ssm), fla (fla-core); auto: the first "
        "Triton kernel installed, on CUDA, else torch (biomamba.models.kernels).",
    )
    recompute_scan: bool = Field(
        True,
        description="Mamba2 training: recompute the scan's chunk x chunk intermediates in backward instead of "
        "keeping them, as mamba-ssm's kernels do (the model's largest activations). Off for a tiny model, whose "
        "activations are small: 1.26-1.37x faster steps for the demo's 0.6M-parameter model on CPU "
        "(benchmarks/demo_train_step.py). Same results either way.",
    )
    seed: int | None = Field(
        None, description="Initialisation seed of a fresh model (default: the recipe's)."
    )
    # architecture overrides of a preset (from scratch only)
    d_model: int | None = Field(None, ge=1)
    n_layer: int | None = Field(None, ge=1)
    vocab_size: int | None = Field(
        None, ge=1, description="Default: the preset's (50277) or the tokenizer's."
    )
    d_state: int | None = Field(None, ge=1)
    d_conv: int | None = Field(None, ge=1)
    expand: int | None = Field(None, ge=1)
    headdim: int | None = Field(None, ge=1)
    ngroups: int | None = Field(None, ge=1)
    tie_embeddings: bool | None = None
    pad_vocab_size_multiple: int | None = Field(None, ge=1)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from biomamba.models.presets import preset_config, preset_names

        try:
            preset_config(value)
        except KeyError:
            raise ValueError(f"unknown preset (known: {', '.join(preset_names())})") from None
        return value

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.name_or_path is not None and self.preset is not None:
            raise ValueError("set name_or_path (load a model) or preset (build a fresh one), not both")
        given = ", ".join(self.overrides())
        if given and self.name_or_path is not None:
            raise ValueError(
                f"architecture overrides ({given}) apply to a fresh preset, not to a loaded checkpoint"
            )
        if self.preset is not None:
            self.mamba2_config()  # raises ValueError on impossible combinations (e.g. headdim vs d_model)
        return self

    def overrides(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ARCH_FIELDS if getattr(self, name) is not None}

    def mamba2_config(self, **extra: Any):
        """The Mamba2Config of the preset with overrides (and ``extra``, e.g. the tokenizer's vocab)."""
        from biomamba.models.presets import preset_config

        if self.preset is None:
            raise ValueError("no preset set")
        changes = {**self.overrides(), **{k: v for k, v in extra.items() if v is not None}}
        if self.chunk_size is not None:
            changes["chunk_size"] = self.chunk_size
        return preset_config(self.preset).replace(**changes)

    def build(self, *, device: str = "cpu", seed: int | None = None, vocab_size: int | None = None):
        """Load or create the model this section describes (eval mode for loaded, init'd for fresh)."""
        from biomamba.models.loading import create_model, load_model

        dtype = None if self.dtype == "auto" else self.dtype
        if self.name_or_path is not None:
            model = load_model(self.name_or_path, dtype=dtype, device=device)
        elif self.preset is not None:
            cfg = self.mamba2_config(vocab_size=self.vocab_size or vocab_size)
            model = create_model(
                cfg, seed=self.seed if self.seed is not None else (seed or 0), dtype=dtype, device=device
            )
        else:
            raise ValueError("the model section needs name_or_path or preset")
        return self.apply_scan_settings(model)

    def apply_scan_settings(self, model):
        """Set this section's ``chunk_size``, ``kernels`` and ``recompute_scan`` on a Mamba2 (runtime only;
        other models pass through).

        For callers that load the checkpoint themselves (the trainer, for its own error messages)."""
        from biomamba.models.mamba2 import Mamba2LMHeadModel

        if isinstance(model, Mamba2LMHeadModel):
            if self.chunk_size is not None:
                model.config.chunk_size = self.chunk_size
            model.config.kernels = self.kernels
            model.config.recompute_scan = self.recompute_scan
        return model
