"""`biomamba export`: release directory with both formats, tokenizer, generation config and a filled card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from biomamba.cli.main import build_app

from .helpers import save_tiny, write_medqa_results


@pytest.fixture
def results_file(tmp_path: Path, tokenizer) -> Path:
    perplexity = {"pubmed": {"ppl": 12.345, "tokens": 999}}
    return write_medqa_results(tmp_path / "results.json", tokenizer, 0, "tiny-bio", perplexity=perplexity)


def test_export_mamba2_release(tmp_path: Path, tokenizer, results_file: Path) -> None:
    from biomamba.models import create_model, load_model, save_model

    model = create_model("tiny", vocab_size=len(tokenizer), seed=0)
    src = save_model(model, tmp_path / "final", tokenizer)
    recipe = tmp_path / "train.yaml"
    recipe.write_text("name: bio-tiny\ndescription: Continued pretraining on PubMed abstracts.\nseed: 3\n")
    out = tmp_path / "release"
    args = ["export", str(src), "--output", str(out), "--training-recipe", str(recipe)]
    args += ["--results", str(results_file), "--format", "transformers", "--format", "mamba_ssm"]
    args += ["--name", "BioMamba-tiny"]
    result = CliRunner().invoke(build_app(), args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "README.md"):
        assert (out / name).is_file(), name
    assert (out / "mamba_ssm" / "pytorch_model.bin").is_file()
    assert json.loads((out / "mamba_ssm" / "config.json").read_text())["d_model"] == 64
    ids = torch.tensor([[3, 4, 5]])
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        for sub in (out, out / "mamba_ssm"):
            torch.testing.assert_close(load_model(sub)(input_ids=ids).logits, expected)
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == tokenizer.eos_token_id
    card = (out / "README.md").read_text()
    acc = json.loads(results_file.read_text())["tasks"]["medqa_4options"]["metrics"]["acc"]
    assert card.startswith("---\nlicense: apache-2.0")
    assert "# BioMamba-tiny" in card and "Continued pretraining on PubMed abstracts." in card
    assert f"{acc:.3f} [" in card and "| pubmed | tiny-bio | 12.345 | 999 |" in card
    assert (out / "biomamba" / "results" / "results.json").is_file()


def test_export_transformers_model_and_errors(tmp_path: Path, tokenizer) -> None:
    src = save_tiny(tmp_path / "gpt", "gpt2", 0, tokenizer)
    runner = CliRunner()
    bad = runner.invoke(build_app(), ["export", str(src), "-o", str(tmp_path / "r"), "--format", "mamba_ssm"])
    assert "mamba_ssm format exists for Mamba2 only" in str(bad.exception)
    assert not (tmp_path / "r").exists()
    ok = runner.invoke(build_app(), ["export", str(src), "-o", str(tmp_path / "r")], catch_exceptions=False)
    assert ok.exit_code == 0
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "r").config.model_type == "gpt2"
    assert "No evaluation results" in (tmp_path / "r" / "README.md").read_text()
