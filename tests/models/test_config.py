"""The `model:` recipe section: validation errors are one line naming the key; build() loads or creates."""

from __future__ import annotations

import pytest
from tests.models.conftest import tiny_model

from biomamba.config.recipe import load_section, schema_for
from biomamba.errors import RecipeError
from biomamba.models import family, save_model
from biomamba.models.config import ModelConfig


def _section(raw: dict) -> ModelConfig:
    return load_section({"model": raw}, "model", ModelConfig, "r.yaml")


def test_registered_schema_is_ours():
    assert schema_for("model") is ModelConfig


@pytest.mark.parametrize(
    ("raw", "key", "words"),
    [
        ({"preset": "9b"}, "model.preset", "unknown preset"),
        ({"preset": "tiny", "name_or_path": "x"}, "model", "not both"),
        ({"name_or_path": "x", "d_model": 64}, "model", "apply to a fresh preset"),
        ({"preset": "tiny", "headdim": 7}, "model", "not a multiple of headdim"),
        ({"preset": "tiny", "chunk_size": 0}, "model.chunk_size", "greater than or equal to 1"),
        ({"preset": "tiny", "dtype": "int8"}, "model.dtype", "Input should be"),
        ({"preset": "tiny", "colour": "red"}, "model.colour", "unknown key"),
    ],
)
def test_impossible_values_are_one_line_errors(raw, key, words):
    with pytest.raises(RecipeError) as err:
        _section(raw)
    message = str(err.value)
    assert message.startswith(f"r.yaml: {key}: ") and words in message and "\n" not in message


def test_build_fresh_preset_with_overrides():
    cfg = _section({"preset": "tiny", "n_layer": 3, "chunk_size": 4, "dtype": "bfloat16", "seed": 1})
    model = cfg.build(vocab_size=77)
    assert family(model) == "mamba2"
    assert model.config.n_layer == 3 and model.config.vocab_size == 77 and model.config.chunk_size == 4
    assert model.dtype.__str__() == "torch.bfloat16"


def test_build_loads_a_directory_and_sets_runtime_options(tmp_path):
    save_model(tiny_model(), tmp_path / "m")
    section = {
        "name_or_path": str(tmp_path / "m"),
        "chunk_size": 3,
        "kernels": "torch",
        "recompute_scan": False,
    }
    model = _section(section).build()
    assert model.config.chunk_size == 3 and model.config.kernels == "torch"
    assert model.config.recompute_scan is False
