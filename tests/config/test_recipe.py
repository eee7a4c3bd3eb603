from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import PositiveInt

from biomamba.config import (
    ExistingFile,
    Section,
    load_recipe_dict,
    load_section,
    merge_overrides,
    parse_set_options,
)
from biomamba.errors import RecipeError


class _Demo(Section):
    batch_size: PositiveInt = 8
    lr: float = 1e-3
    corpus: ExistingFile | None = None


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_unknown_top_level_key_names_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "trian: {}\n")
    with pytest.raises(RecipeError, match=r"r\.yaml: trian: unknown key"):
        load_recipe_dict(path)


def test_unknown_section_key_is_named(tmp_path: Path) -> None:
    recipe = load_recipe_dict(_write(tmp_path, "train:\n  batch_sise: 4\n"))
    with pytest.raises(RecipeError, match=r"train\.batch_sise: unknown key"):
        load_section(recipe, "train", _Demo, "r.yaml")


def test_wrong_type_and_impossible_value(tmp_path: Path) -> None:
    recipe = load_recipe_dict(_write(tmp_path, "train:\n  lr: fast\n"))
    with pytest.raises(RecipeError, match=r"train\.lr: Input should be a valid number.*got .fast."):
        load_section(recipe, "train", _Demo, "r.yaml")
    with pytest.raises(RecipeError, match=r"train\.batch_size: .*greater than 0 \(got 0\)"):
        load_section({"train": {"batch_size": 0}}, "train", _Demo, "r.yaml")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"train\.corpus: file not found: .*nope\.txt"):
        load_section({"train": {"corpus": str(tmp_path / "nope.txt")}}, "train", _Demo, "r.yaml")


def test_invalid_yaml_and_missing_recipe(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"invalid YAML \(line \d+, column \d+\): expected"):
        load_recipe_dict(_write(tmp_path, "train:\n  lr: [1, 2\n"))
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe_dict(tmp_path / "absent.yaml")


def test_flags_win_and_unset_flags_keep_recipe_values() -> None:
    recipe = {"train": {"lr": 0.1, "batch_size": 4}}
    merged = merge_overrides(
        recipe, {"train.lr": 0.5, "train.batch_size": None, **parse_set_options(["eval.shots=3"])}
    )
    assert merged == {"train": {"lr": 0.5, "batch_size": 4}, "eval": {"shots": 3}}
    assert recipe["train"]["lr"] == 0.1  # the input is not mutated


def test_set_option_without_equals_is_an_error() -> None:
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        parse_set_options(["train.lr"])
