"""Weight-only quantization: save/reload of every family, the backends chosen, clear errors (the layer
format itself, against torchao, is tests/models/test_quantized.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from biomamba.compress.quantize import load_bitsandbytes, quantize_model
from biomamba.errors import BiomambaError
from biomamba.models import load_model, save_model
from biomamba.models.quantized import load_quantized, save_quantized

from .helpers import build_model


@pytest.mark.parametrize(
    ("family", "method"),
    [("llama", "int8"), ("llama", "int4"), ("mamba2", "int8"), ("mamba2", "int4"), ("gpt2", "int4")],
)
def test_quantize_save_reload(family: str, method: str, tmp_path: Path, tokenizer) -> None:
    model = build_model(family)
    src = save_model(model, tmp_path / "src", tokenizer)
    ids = torch.tensor([[5, 17, 42, 9, 100, 3]])
    with torch.no_grad():
        exact = model(input_ids=ids).logits
    record = quantize_model(model, method, group_size=16)
    backends = {layer["backend"] for layer in record["layers"].values()}
    assert backends == ({"torchao"} if method == "int8" else {"biomamba"})  # no CPU int4 kernel in torchao
    assert not any("lm_head" in name for name in record["layers"])
    with torch.no_grad():
        quant = model(input_ids=ids).logits
    rel = ((quant - exact).norm() / exact.norm()).item()
    assert 0 < rel < (0.05 if method == "int8" else 0.3)
    out = save_quantized(model, record, src, tmp_path / "q")
    assert json.loads((out / "quantization.json").read_text())["method"] == method
    assert (out / "tokenizer.json").is_file()
    reloaded = load_model(out)
    with torch.no_grad():
        again = reloaded(input_ids=ids).logits
    torch.testing.assert_close(again, quant)


def test_int4_weights_are_smaller_on_disk(tmp_path: Path, tokenizer) -> None:
    model = build_model("mamba2")
    src = save_model(model, tmp_path / "src", tokenizer)
    record = quantize_model(model, "int4", group_size=32)
    out = save_quantized(model, record, src, tmp_path / "q")
    linear_bytes = sum(
        m.weight.numel() * 4 for n, m in build_model("mamba2").named_modules() if n in record["layers"]
    )
    saved = (src / "model.safetensors").stat().st_size - (out / "model.safetensors").stat().st_size
    assert saved > 0.75 * linear_bytes  # int4 + scales is well under 1/4 of fp32
    reloaded = load_quantized(out)
    assert reloaded.lm_head.weight is reloaded.backbone.embeddings.weight  # tied head kept tied
    head = quantize_model(build_model("mamba2"), "int4", group_size=32, skip_modules=())
    assert "lm_head" in head["layers"]


def test_bad_method_and_bitsandbytes_on_cpu(tmp_path: Path) -> None:
    with pytest.raises(BiomambaError, match="unknown quantization method"):
        quantize_model(build_model("llama"), "int3")
    with pytest.raises(BiomambaError, match="needs a CUDA GPU"):
        load_bitsandbytes(tmp_path, "bnb-nf4", device="cpu")
    with pytest.raises(BiomambaError, match="torchao cannot quantize"):
        quantize_model(build_model("llama"), "int4", backend="torchao")


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["bnb-int8", "bnb-nf4"])
def test_bitsandbytes_on_gpu(method: str, tmp_path: Path, tokenizer) -> None:
    pytest.importorskip("bitsandbytes")
    model = build_model("llama")
    src = save_model(model, tmp_path / "src", tokenizer)
    loaded = load_bitsandbytes(src, method)
    ids = torch.tensor([[5, 17, 42]], device="cuda")
    with torch.no_grad():
        assert torch.isfinite(loaded(input_ids=ids).logits).all()


@pytest.mark.gpu
def test_torchao_int4_on_gpu() -> None:
    model = build_model("mamba2").to("cuda", torch.bfloat16)
    record = quantize_model(model, "int4", group_size=32)
    assert "torchao" in {layer["backend"] for layer in record["layers"].values()}
