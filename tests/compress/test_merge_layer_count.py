"""Merging Mamba2 models of different depths: one line saying why, not a pydantic traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from biomamba.models import create_model, save_model

from .helpers import exit_and_error


def _mamba2(path: Path, layers: int) -> Path:
    config = {"d_model": 16, "n_layer": layers, "vocab_size": 32, "d_state": 8, "headdim": 8, "chunk_size": 8}
    save_model(create_model(config, seed=layers), path)  # the transformers Mamba2 layout
    return path


def test_different_layer_counts_are_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two, three = _mamba2(tmp_path / "two", 2), _mamba2(tmp_path / "three", 3)
    config = tmp_path / "merge.yaml"
    config.write_text(yaml.safe_dump({
        "merge_method": "linear", "models": [{"model": str(two), "parameters": {"weight": 0.5}},
                                             {"model": str(three), "parameters": {"weight": 0.5}}],
        "output_dir": str(tmp_path / "out"),
    }))  # fmt: skip
    code, err = exit_and_error(["merge", str(config)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"different layer counts ({two}: 2 layers, {three}: 3 layers)" in err
    assert not (tmp_path / "out").exists()
