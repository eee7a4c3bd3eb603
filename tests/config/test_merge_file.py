"""The config layer knows a mergekit-style merge file by its shape, reads it once, and imports no stage."""

from __future__ import annotations

from pathlib import Path
from unittest.mock import Mock

import pytest
import yaml

from biomamba.cli.main import run
from biomamba.config import check_recipe, is_mergekit_merge, load_recipe_or_merge_file

MERGEKIT = "merge_method: linear\nmodels:\n  - {model: a, parameters: {weight: 1}}\n  - {model: b, parameters: {weight: 1}}\n"
MERGE_RECIPE = "merge:\n" + "".join(f"  {line}\n" for line in MERGEKIT.splitlines())  # the same, as a recipe


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> Mock:
    """yaml.safe_load, still parsing, under a mock that counts its calls (`call_count`)."""
    counting = Mock(wraps=yaml.safe_load)
    monkeypatch.setattr(yaml, "safe_load", counting)
    return counting


def test_shape_tells_a_merge_file_from_a_recipe(tmp_path: Path) -> None:
    assert is_mergekit_merge(yaml.safe_load(MERGEKIT))
    assert not is_mergekit_merge({"merge": yaml.safe_load(MERGEKIT)})
    path = tmp_path / "m.yaml"
    path.write_text(MERGEKIT)
    assert load_recipe_or_merge_file(path) == {"merge": yaml.safe_load(MERGEKIT)}


@pytest.mark.parametrize("layout", ["mergekit", "recipe"])
def test_check_recipe_parses_a_merge_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MERGEKIT if layout == "mergekit" else MERGE_RECIPE)
    calls = _count_parses(monkeypatch)
    sections = check_recipe(path, {"merge.seed": 4})
    assert calls.call_count == 1
    assert sections["merge"].merge_method == "linear" and sections["merge"].seed == 4


def test_merge_loader_parses_a_recipe_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from biomamba.compress.merge import load_merge_config

    path = tmp_path / "r.yaml"
    path.write_text("name: x\n" + MERGE_RECIPE)
    calls = _count_parses(monkeypatch)
    assert load_merge_config(path).merge_method == "linear" and calls.call_count == 1


def test_recipe_check_of_a_bad_merge_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MERGEKIT.replace("weight: 1}}\n", "wieght: 1}}\n", 1))
    with pytest.raises(SystemExit) as done:
        run(["recipe", "check", str(path)])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "m.yaml: merge: models.0.parameters: linear has no parameter 'wieght'" in err


def test_the_config_layer_imports_no_stage() -> None:
    """config sits below every stage: an import of one (even inside a function) would make a circle. Read with
    the import-graph test's reader, which also sees relative imports and lazily re-exported names."""
    from tests.test_import_graph import RANK, edges, stage_of

    above = [
        f"{src}:{line} imports {dst}"
        for src, dst, line in edges()
        if stage_of(src) == "config" and RANK.get(stage_of(dst), 0) > RANK["config"]
    ]
    assert not above, above
