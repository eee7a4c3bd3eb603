"""The shipped fine-tuning recipes validate, and fail with one clear line when data or model is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from biomamba.config import load_recipe_dict
from biomamba.errors import BiomambaError, CheckpointError, RecipeError
from biomamba.finetune.run import finetune, load_configs

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("finetune-*.yaml"))


def test_recipes_exist_for_the_published_setups() -> None:
    names = {p.name for p in RECIPES}
    assert {
        "finetune-biomamba-pubmedqa.yaml",
        "finetune-biomistral-medqa.yaml",
        "finetune-biomistral-medmcqa.yaml",
        "finetune-biomedlm-medqa-mc.yaml",
        "finetune-mimic-discharge.yaml",
        "finetune-biomedlm-consumer-qa.yaml",
        "finetune-biomedlm-pubmedqa-seqcls.yaml",
    } <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_missing_data_then_missing_model(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe_dict(path)
    sources = [
        s for key in ("train_data", "validation_data", "eval_data") for s in recipe["finetune"].get(key, [])
    ]
    if not all(Path(s["path"]).is_file() for s in sources):
        with pytest.raises(RecipeError, match=r"finetune\.\w+_data\.\d+\.path: file not found"):
            load_configs(recipe, str(path))
    for index, source in enumerate(sources):  # stand-in files: the schema is otherwise valid
        stand_in = tmp_path / f"data-{index}.json"
        stand_in.write_text("{}")
        source["path"] = str(stand_in)
        source.pop("test_ids", None)
        if source["format"] == "pubmedqa" and source.get("split") in ("train", "test"):
            (tmp_path / "test_ground_truth.json").write_text("{}")
    config, train = load_configs(recipe, str(path))
    assert config.base_model and train.lr > 0
    recipe["finetune"]["base_model"] = str(tmp_path / "no-such-model")
    with pytest.raises(CheckpointError, match="no-such-model: no such model directory"):
        finetune(recipe, source=str(path), output_dir=tmp_path / "run", log=lambda *_: None)


def test_impossible_values_name_the_key(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("")
    base = {"task": "sft-qa", "base_model": "x", "train_data": [{"format": "medqa", "path": str(data)}]}
    with pytest.raises(RecipeError, match=r"finetune\.split_fractions: .*sum to 1"):
        load_configs(
            {"finetune": {**base, "split_fractions": {"train": 0.9, "validation": 0.2, "test": 0.1}}}
        )
    with pytest.raises(RecipeError, match=r"format 'mtsamples' does not fit task 'sft-qa'"):
        load_configs({"finetune": {**base, "train_data": [{"format": "mtsamples", "path": str(data)}]}})
    with pytest.raises(RecipeError, match=r"finetune\.lora\.r: .*greater than or equal to 1"):
        load_configs({"finetune": {**base, "lora": {"r": 0}}})
    with pytest.raises(RecipeError, match=r"train\.corpus: not used by finetune"):
        load_configs({"finetune": base, "train": {"corpus": "x"}})
    with pytest.raises(BiomambaError, match=r"finetune\.max_length"):
        load_configs({"finetune": {**base, "max_length": 2}})
