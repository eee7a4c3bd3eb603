"""Quantized directories (`biomamba quantize`) reloaded by the other stages: eval scores, export releases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from biomamba.cli.main import build_app
from biomamba.compress.quantize import quantize_model
from biomamba.models.quantized import load_quantized, save_quantized

from .helpers import build_model, save_tiny

IDS = torch.tensor([[5, 17, 42, 9, 100, 3]])


def _quantized_dir(tmp_path: Path, tokenizer, family: str, method: str) -> tuple[Path, torch.Tensor]:
    """A quantized directory of a tiny model, and the quantized model's logits on IDS."""
    from biomamba.models import save_model

    model = build_model(family, seed=0)
    src = save_model(model, tmp_path / "src", tokenizer)
    record = quantize_model(model, method, group_size=16)
    out = save_quantized(model, record, src, tmp_path / "q")
    with torch.no_grad():
        logits = model(input_ids=IDS).logits
    return out, logits


@pytest.mark.parametrize(("family", "method"), [("llama", "int4"), ("gpt2", "int4"), ("mamba2", "int8")])
def test_load_model_scores_the_quantized_weights(family: str, method: str, tmp_path: Path, tokenizer) -> None:
    from biomamba.models import load_model, load_tokenizer

    out, expected = _quantized_dir(tmp_path, tokenizer, family, method)
    model, tok = load_model(str(out)), load_tokenizer(str(out))
    assert not model.training and len(tok) == len(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=IDS).logits, expected)


def test_export_of_a_quantized_dir_keeps_its_weights(tmp_path: Path, tokenizer) -> None:
    out, expected = _quantized_dir(tmp_path, tokenizer, "llama", "int4")
    release = tmp_path / "release"
    runner = CliRunner()
    bad = runner.invoke(build_app(), ["export", str(out), "-o", str(release), "--format", "mamba_ssm"])
    assert "quantized format only" in str(bad.exception) and not release.exists()
    ok = runner.invoke(build_app(), ["export", str(out), "-o", str(release)], catch_exceptions=False)
    assert ok.exit_code == 0, ok.output
    assert json.loads((release / "quantization.json").read_text())["method"] == "int4"
    with torch.no_grad():
        torch.testing.assert_close(load_quantized(release)(input_ids=IDS).logits, expected)
    card = (release / "README.md").read_text()
    assert "int4 weight-only" in card and "load_model('./this-directory')" in card
    assert "library_name" not in card.split("---")[1]
    full = build_model("llama", seed=0)
    assert f"| parameters | {sum(p.numel() for p in full.parameters()):,} |" in card


def test_model_card_names_biomamba_without_a_placeholder_link(tmp_path: Path, tokenizer) -> None:
    from biomamba import __version__

    src = save_tiny(tmp_path / "gpt", "gpt2", 0, tokenizer)
    result = CliRunner().invoke(
        build_app(), ["export", str(src), "-o", str(tmp_path / "r")], catch_exceptions=False
    )
    assert result.exit_code == 0
    card = (tmp_path / "r" / "README.md").read_text()
    assert "https://github.com/)" not in card and "](" not in card.split("## Model")[0]
    assert f"biomamba {__version__}" in card
