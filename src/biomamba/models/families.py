"""One spec per model family: what consumers ask (``spec.takes_seq_idx``, ``spec.lora_targets``, ...)
instead of comparing family names, so a new family is one row of `FAMILIES` plus its tests (torchtitan's
``ModelSpec`` pattern; docs/ARCHITECTURE.md, "Adding a model family", walks through one).

Lookups: `family_spec(model)` (through torch.compile, DDP and peft wrappers), `family_named(name)` (what
`family` returned, or a recipe's ``model_type``), `family_of_dir(model_dir)` (without loading it). A
transformers ``model_type`` with no row gets a generic transformer spec named after it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # torch is imported by whoever holds a model; reading a spec needs none
    from torch import nn


@dataclass(frozen=True)
class FamilySpec:
    """What consumers ask about one model family (docs/ARCHITECTURE.md lists who asks what)."""

    name: str
    native: bool = False  # biomamba's own module (Mamba2LMHeadModel), else transformers' AutoModelForCausalLM
    model_types: tuple[str, ...] = ()  # the transformers config.model_type values a non-native row covers
    takes_seq_idx: bool = False  # forward(seq_idx=...) isolates packed documents: no block-diagonal mask
    # generation's state (models.decode_state.decode_state): one fixed-size state per row, or a KV cache
    decode_state: Literal["recurrent", "kv"] = "kv"
    # eval's scorer: cached Mamba2 state, KV cache, or one forward per sequence (caches that cannot continue)
    eval_backend: Literal["mamba2", "kv", "full"] = "kv"
    attention: bool = True  # FLOPs per token carry attention's 12 x layers x d_model x seq term
    positional_limit: bool = True  # the config caps positions (n_positions, max_position_embeddings)
    lora_targets: tuple[str, ...] = ()  # module names LoRA wraps by default
    lora_fan_in_fan_out: bool = False  # those modules are GPT-2's Conv1D (weights stored transposed)
    gguf_architecture: str | None = None  # the llama.cpp architecture GGUF export writes (None: no GGUF)
    release_formats: tuple[str, ...] = ("transformers",)  # `biomamba export`'s default formats
    card_fields: tuple[tuple[str, str], ...] = ()  # extra (label, config attribute) rows of the model card


_TRANSFORMERS_MAMBA: dict[str, Any] = dict(eval_backend="full", attention=False, positional_limit=False)
_ATTENTION_MLP = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

MAMBA2 = FamilySpec(
    "mamba2",
    native=True,
    takes_seq_idx=True,
    decode_state="recurrent",
    eval_backend="mamba2",
    attention=False,  # the scan is linear in the sequence: counted in the parameter term
    positional_limit=False,
    lora_targets=("in_proj", "out_proj"),  # the mixer's two large matrices; conv, dt and A stay frozen
    gguf_architecture="MAMBA2",
    release_formats=("transformers", "mamba_ssm"),
    card_fields=(("SSM state size", "d_state"), ("head dim", "headdim")),
)

FAMILIES: tuple[FamilySpec, ...] = (
    MAMBA2,
    FamilySpec(
        "gpt2",
        model_types=("gpt2",),
        lora_targets=("c_attn", "c_proj", "c_fc"),
        lora_fan_in_fan_out=True,
        gguf_architecture="GPT2",
    ),
    FamilySpec("llama", model_types=("llama",), lora_targets=_ATTENTION_MLP, gguf_architecture="LLAMA"),
    FamilySpec("mistral", model_types=("mistral",), lora_targets=_ATTENTION_MLP, gguf_architecture="LLAMA"),
    FamilySpec("mixtral", model_types=("mixtral",), lora_targets=("q_proj", "k_proj", "v_proj", "o_proj")),
    FamilySpec("qwen2", model_types=("qwen2",), lora_targets=_ATTENTION_MLP),
    FamilySpec(
        "gpt_neox",
        model_types=("gpt_neox",),
        lora_targets=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
    ),
    # transformers' own Mamba classes: their caches cannot continue several tokens at once
    FamilySpec("transformers-mamba", model_types=("mamba",), **_TRANSFORMERS_MAMBA),
    FamilySpec("transformers-mamba2", model_types=("mamba2",), **_TRANSFORMERS_MAMBA),
)

GENERIC = FamilySpec("transformers")  # any other transformers causal LM: attention with a KV cache


def family_named(name: str) -> FamilySpec:
    """The row called `name` (what `family` returns; "mamba2" is biomamba's own), else the row covering that
    transformers ``model_type``, else a generic transformer spec with that name."""
    return next((spec for spec in FAMILIES if spec.name == name), None) or _by_model_type(name)


def _by_model_type(model_type: str) -> FamilySpec:
    generic = replace(GENERIC, name=model_type, model_types=(model_type,))
    return next((spec for spec in FAMILIES if model_type in spec.model_types), generic)


def family_spec(model: nn.Module, default: FamilySpec | None = None) -> FamilySpec:
    """The spec of a loaded model (torch.compile, DDP and peft wrappers seen through); for an object no
    family names (no config.model_type, e.g. llama.cpp's model) `default`, or TypeError without one."""
    from biomamba.models.loading import unwrap
    from biomamba.models.mamba2 import Mamba2LMHeadModel

    model = unwrap(model)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if isinstance(model, Mamba2LMHeadModel) or isinstance(base, Mamba2LMHeadModel):
        return MAMBA2
    model_type = getattr(getattr(base, "config", None), "model_type", None)
    if model_type:
        return _by_model_type(str(model_type))
    if default is None:
        raise TypeError(f"cannot tell the family of {type(model).__name__}")
    return default


def family(model: nn.Module) -> str:
    """The family's name: ``"mamba2"`` for biomamba's Mamba2, else the transformers ``model_type``'s row
    (``gpt2``, ``llama``, ..., or the model_type itself)."""
    return family_spec(model).name


def family_of_dir(model_dir: str | Path) -> FamilySpec:
    """The spec of a model directory, read from its config.json without loading the weights."""
    from biomamba.models.checkpoint import detect_format, read_config

    if detect_format(model_dir) in ("hf", "mamba-ssm"):
        return MAMBA2
    return _by_model_type(str(read_config(model_dir).get("model_type", "unknown")))
