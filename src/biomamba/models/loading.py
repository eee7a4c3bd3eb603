"""One loading interface over every on-disk model format: biomamba's Mamba2 (transformers and mamba-ssm
formats), biomamba's quantized directories, and transformers' causal LMs (GPT-2, Llama, Mistral, ...)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from biomamba.errors import CheckpointError, refused_pickle
from biomamba.models.checkpoint import detect_format, has_tokenizer, load_mamba2, save_mamba2
from biomamba.models.mamba2 import Mamba2Config, Mamba2LMHeadModel
from biomamba.models.presets import preset_config
from biomamba.models.quantized import is_quantized_dir, load_quantized

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
# state-spaces/mamba2-* ship without tokenizer files; they were trained with this one.
MAMBA_SSM_TOKENIZER = "EleutherAI/gpt-neox-20b"


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key == "auto":
        return None
    if key not in DTYPES:
        raise CheckpointError(f"unknown dtype {dtype!r} (choose from {', '.join(sorted(DTYPES))}, auto)")
    return DTYPES[key]


def resolve_model_dir(name_or_path: str | Path) -> Path:
    """A local directory as is; otherwise a hub repo id downloaded (config, weights, tokenizer) when online."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path}: expected a model directory, found a file")
    name = str(name_or_path)
    if name.count("/") != 1 or name.startswith((".", "/")):
        raise CheckpointError(f"{name}: no such model directory (and not a hub name like 'org/model')")
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(
            name,
            allow_patterns=["*.json", "*.safetensors", "pytorch_model.bin", "*.model", "*.txt", "*.tiktoken"],
        )
    except Exception as exc:
        raise CheckpointError(
            f"{name}: not a local directory, and downloading it from the Hugging Face hub failed "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    return Path(local)


def load_model(
    name_or_path: str | Path, *, dtype: torch.dtype | str | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """Load any supported model directory (or hub name) in eval mode.

    A quantized directory (`biomamba quantize`'s, holding quantization.json) -> its architecture with the
    saved quantized layers (`biomamba.models.quantized`; ``dtype`` does not apply: the stored dtypes are the
    quantization's own). Mamba2 (transformers or mamba-ssm format) -> `Mamba2LMHeadModel`; anything else goes
    through transformers' ``AutoModelForCausalLM`` (GPT-2, Llama, Mistral, ...). ``dtype`` None keeps the
    stored dtype for Mamba2 and transformers' default for the others."""
    model_dir = resolve_model_dir(name_or_path)
    torch_dtype = resolve_dtype(dtype)
    if is_quantized_dir(model_dir):
        return load_quantized(model_dir, device=device)
    fmt = detect_format(model_dir)
    if fmt in ("hf", "mamba-ssm"):
        return load_mamba2(model_dir, dtype=torch_dtype, device=device)
    from transformers import AutoModelForCausalLM

    try:
        kwargs: dict[str, Any] = {"dtype": torch_dtype} if torch_dtype is not None else {}
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{model_dir}: transformers cannot load it ({str(exc).splitlines()[0]})"
        ) from None
    except pickle.UnpicklingError as exc:  # a pytorch_model.bin that weights_only refused
        raise (refused_pickle(model_dir, exc) or exc) from None
    return model.to(device).eval()


def load_tokenizer(name_or_path: str | Path) -> Any:
    """The model's transformers tokenizer; mamba-ssm dirs without one fall back to GPT-NeoX-20B's."""
    from transformers import AutoTokenizer

    model_dir = resolve_model_dir(name_or_path)
    source: str | Path = model_dir
    if not has_tokenizer(model_dir):
        if detect_format(model_dir) != "mamba-ssm":
            raise CheckpointError(f"{model_dir}: no tokenizer files (tokenizer.json / tokenizer_config.json)")
        source = resolve_model_dir(MAMBA_SSM_TOKENIZER)
    try:
        return AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{source}: cannot load tokenizer ({str(exc).splitlines()[0]})") from None


def save_model(model: nn.Module, out_dir: str | Path, tokenizer: Any = None, *, fmt: str = "hf") -> Path:
    """Write a model directory atomically: Mamba2 in the transformers Mamba2 format (``fmt="hf"``, default)
    or the mamba-ssm format; other models through ``save_pretrained`` (safetensors)."""
    model = unwrap(model)
    if isinstance(model, Mamba2LMHeadModel):
        return save_mamba2(model, out_dir, fmt=fmt, tokenizer=tokenizer)
    if fmt != "hf":
        raise CheckpointError(f"format {fmt!r} exists only for Mamba2 models")
    from biomamba.utils.atomic import atomic_dir

    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        if tokenizer is not None:
            from biomamba.tokenizer import save_tokenizer

            save_tokenizer(tokenizer, tmp)
    return out


def unwrap(model: nn.Module) -> nn.Module:
    """The underlying model of a torch.compile or DDP/FSDP-style wrapper (peft models are left alone)."""
    while True:
        inner = getattr(model, "_orig_mod", None) or (
            model.module if type(model).__name__ in {"DistributedDataParallel", "DataParallel"} else None
        )
        if inner is None:
            return model
        model = inner


def create_model(
    config_or_preset: Mamba2Config | str | dict[str, Any],
    *,
    seed: int | None = 0,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device = "cpu",
    **overrides: Any,
) -> Mamba2LMHeadModel:
    """A freshly initialised Mamba2 (mamba-ssm's init) from a config, a preset name or a config dict
    (mamba-ssm field names); ``overrides`` replace config fields (e.g. ``vocab_size=32000``)."""
    if isinstance(config_or_preset, Mamba2Config):
        cfg = config_or_preset
    elif isinstance(config_or_preset, str):
        try:
            cfg = preset_config(config_or_preset)
        except KeyError as exc:
            raise CheckpointError(str(exc.args[0])) from None
    else:
        cfg = Mamba2Config(**config_or_preset)
    if overrides:
        cfg = cfg.replace(**overrides)
    model = Mamba2LMHeadModel(cfg)
    model.init_weights(seed=seed)
    torch_dtype = resolve_dtype(dtype)
    return model.to(device=device, dtype=torch_dtype) if torch_dtype is not None else model.to(device)
