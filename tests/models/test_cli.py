"""`biomamba models list|info|convert|create` through the real console entry point."""

from __future__ import annotations

import torch
from tests.factories.scripts import run_main
from tests.models.conftest import tiny_model

from biomamba.models import load_model, save_model


def test_list_prints_presets_with_exact_counts(capsys):
    code, out, _ = run_main(["models", "list"], capsys)
    assert code == 0
    assert "128,989,632" in out and "2,702,599,680" in out
    row = next(line for line in out.splitlines() if line.startswith("2.7b"))
    assert row.split()[:6] == ["2.7b", "2560", "64", "128", "64", "2"] and "50277->50288" in row


def test_convert_and_info(tmp_path, capsys, tokenizer):
    model = tiny_model(vocab_size=len(tokenizer))
    save_model(model, tmp_path / "hf", tokenizer=tokenizer)
    code, out, _ = run_main(
        ["models", "convert", str(tmp_path / "hf"), str(tmp_path / "ssm"), "--to", "mamba-ssm"], capsys
    )
    assert code == 0 and "mamba-ssm" in out
    assert (tmp_path / "ssm/tokenizer.json").is_file()
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "ssm")(input_ids=ids).logits, model(input_ids=ids).logits)
    code, out, _ = run_main(["models", "info", str(tmp_path / "ssm")], capsys)
    assert (
        code == 0 and "mamba-ssm format" in out and f"{model.num_parameters():,}" in out and "included" in out
    )


def test_user_errors_are_one_line_exit_2(tmp_path, capsys):
    code, _, err = run_main(
        ["models", "convert", str(tmp_path / "missing"), str(tmp_path / "o"), "--to", "hf"], capsys
    )
    assert code == 2 and err.startswith("error: ") and "no such model directory" in err
    save_model(tiny_model(), tmp_path / "m")
    code, _, err = run_main(
        ["models", "convert", str(tmp_path / "m"), str(tmp_path / "o"), "--to", "onnx"], capsys
    )
    assert code == 2 and "unknown target format" in err
    code, _, err = run_main(["models", "create", "--preset", "tiny", "--set", "model.headdim=5"], capsys)
    assert code == 2 and "flags: model:" in err


def test_create_writes_a_loadable_model(tmp_path, capsys, tokenizer):
    tok_dir = tmp_path / "tok"
    tokenizer.save_pretrained(tok_dir)
    out_dir = tmp_path / "fresh"
    argv = ["models", "create", "--preset", "tiny", "--tokenizer", str(tok_dir), "--output-dir", str(out_dir)]
    code, out, _ = run_main([*argv, "--set", "model.n_layer=1"], capsys)
    assert code == 0
    model = load_model(out_dir)
    assert model.config.vocab_size == len(tokenizer) and model.config.n_layer == 1
    assert (out_dir / "tokenizer.json").is_file()
