"""Model and tokenizer loading for evaluation, through `biomamba.models` (all supported formats)."""

from __future__ import annotations

from typing import Any

from biomamba.errors import BiomambaError


def load(name_or_path: str, *, device: str = "cpu", dtype: str | None = None) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) for a model directory or hub name."""
    try:
        from biomamba.models import load_model, load_tokenizer
    except ImportError:  # models stage not installed yet: transformers formats only
        load_model = load_tokenizer = None
    if load_model is not None:
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


def model_family(model: Any) -> str:
    try:
        from biomamba.models import family

        return str(family(model))
    except ImportError:
        return str(getattr(getattr(model, "config", None), "model_type", type(model).__name__))
