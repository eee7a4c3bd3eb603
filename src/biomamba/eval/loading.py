"""Model and tokenizer loading for evaluation, through `biomamba.models` (all supported formats).

A directory written by `biomamba quantize` (it holds `quantization.json`, the documented marker of that
format) is rebuilt by the compress stage's loader, so its quantized layers carry the saved weights;
`biomamba.models.load_model` does not know that format and would initialise those layers afresh.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biomamba.errors import BiomambaError


def load(name_or_path: str, *, device: str = "cpu", dtype: str | None = None) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) for a model directory or hub name."""
    try:
        from biomamba.models import load_model, load_tokenizer
    except ImportError:  # models stage not installed yet: transformers formats only
        load_model = load_tokenizer = None
    if is_quantized_dir(name_or_path):
        from biomamba.compress.quantize import load_quantized
        from biomamba.models import load_tokenizer as quantized_tokenizer

        # The stored dtypes are the quantization's own (scales, torchao tensors): `dtype` does not apply.
        model = load_quantized(name_or_path, device=device)
        tokenizer = quantized_tokenizer(name_or_path)
    elif load_model is not None:
        model = load_model(name_or_path, dtype=dtype, device=device)
        tokenizer = load_tokenizer(name_or_path)
    else:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            model = AutoModelForCausalLM.from_pretrained(
                name_or_path, dtype=getattr(torch, dtype) if dtype else None
            ).to(device)
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        except OSError as exc:
            raise BiomambaError(f"{name_or_path}: cannot load model ({exc})") from None
    model.eval()
    return model, tokenizer


QUANTIZATION_MARKER = "quantization.json"  # written by `biomamba quantize` (biomamba.compress.quantize)


def is_quantized_dir(name_or_path: str | Path) -> bool:
    """True for a local directory written by `biomamba quantize` (it holds quantization.json)."""
    return (Path(name_or_path) / QUANTIZATION_MARKER).is_file()


def model_family(model: Any) -> str:
    try:
        from biomamba.models import family

        return str(family(model))
    except (ImportError, TypeError):  # no models stage, or a model it cannot name (the "full" backend's)
        return str(getattr(getattr(model, "config", None), "model_type", type(model).__name__))
