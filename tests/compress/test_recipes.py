"""The shipped merge and quantize recipes validate against their schemas."""

from __future__ import annotations

from pathlib import Path

import pytest

from biomamba.compress.config import QuantizeConfig
from biomamba.compress.merge import load_merge_config
from biomamba.config import load_recipe_dict, load_section

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize("path", sorted(RECIPES.glob("merge-*.yaml")), ids=lambda p: p.name)
def test_merge_recipes_validate(path: Path) -> None:
    cfg = load_merge_config(path)
    assert cfg.merge_method in ("slerp", "ties", "dare_ties") and cfg.output_dir


def test_biomistral_slerp_curves() -> None:
    cfg = load_merge_config(RECIPES / "merge-biomistral-slerp.yaml")
    filters = [entry.get("filter") for entry in cfg.parameters["t"]]
    assert filters == ["self_attn", "mlp", None]


@pytest.mark.parametrize("path", sorted(RECIPES.glob("quantize-*.yaml")), ids=lambda p: p.name)
def test_quantize_recipes_validate(path: Path) -> None:
    raw = load_recipe_dict(path)
    raw["quantize"]["eval_corpus"] = None  # the corpus exists only after `biomamba data build`
    cfg = load_section(raw, "quantize", QuantizeConfig, str(path))
    assert cfg.method in ("int8", "int4")
