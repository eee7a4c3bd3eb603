"""Every command that reads a recipe follows one rule: a flag beats `--set`, which beats the recipe file.

Each case gives one key three ways through the real `biomamba` entry point, each value invalid in its own way,
so the command stops at validation (nothing is loaded or written) and its one-line error names the winner.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from typer.testing import CliRunner

from biomamba.cli.main import build_app, run
from biomamba.config import PRECEDENCE, merge_overrides


class Case(NamedTuple):
    argv: list[str]  # the command; RECIPE stands for the recipe file
    key: str  # the dotted recipe key under test
    flag: str | None  # the command's flag for it (None: --set only)
    values: tuple[Any, Any, Any]  # (recipe, --set, flag), each rejected by the schema
    recipe: dict[str, Any] = {}  # the rest of a recipe that validates


def _cases(tmp: Path) -> dict[str, Case]:
    qa = [{"format": "pubmedqa", "path": str(tmp / "data.jsonl")}]
    sources = {"pubmed": [{"type": "jsonl", "path": str(tmp / "data.jsonl")}]}
    return {
        "train": Case(["train", "RECIPE", "-o", str(tmp / "out")], "train.lr", "--lr", (-1.0, -2.0, -3.0)),
        "finetune": Case(["finetune", "RECIPE", "-o", str(tmp / "out")], "finetune.method", "--method",
                         ("m1", "m2", "m3"), {"finetune": {"task": "sft-qa", "base_model": "m", "train_data": qa}}),
        "data build": Case(["data", "build", "RECIPE"], "data.heldout_fraction", "--heldout-fraction",
                           (2.0, 3.0, 4.0), {"data": {"sources": sources, "ratios": {"pubmed": 1.0}}}),
        "tokenizer train": Case(["tokenizer", "train", "RECIPE"], "tokenizer.vocab_size", "--vocab-size", (1, 2, 3)),
        "models create": Case(["models", "create", "RECIPE"], "model.vocab_size", "--vocab-size", (-1, -2, -3)),
        "eval run": Case(["eval", "run", "m", "--recipe", "RECIPE"], "eval.seeds", "--seeds", (-1, -2, -3)),
        "quantize": Case(["quantize", "m", "-r", "RECIPE"], "quantize.group_size", "--group-size", (3, 5, 7)),
        "export": Case(["export", "m", "-o", str(tmp / "out"), "-r", "RECIPE"], "export.formats", "--format",
                       (["f1"], ["f2"], "f3")),
        "serve": Case(["serve", "m", "-r", "RECIPE"], "serve.port", "--port", (70001, 70002, 70003)),
        "demo": Case(["demo", "-o", str(tmp / "out"), "-r", "RECIPE"], "demo.base.max_steps", "--base-steps",
                     (-1, -2, -3), {"demo": {"base": {"lr": 0.001}}}),
        "recipe check": Case(["recipe", "check", "RECIPE"], "train.lr", None, (-1.0, -2.0, None)),
    }  # fmt: skip


COMMANDS = list(_cases(Path()))


@pytest.mark.parametrize("given", ["recipe", "set", "flag"])
@pytest.mark.parametrize("command", COMMANDS)
def test_flag_beats_set_beats_recipe(
    command: str, given: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, key, flag, (in_recipe, in_set, in_flag), rest = _cases(tmp_path)[command]
    if given == "flag" and flag is None:
        pytest.skip(f"`biomamba {command}` has no flag for {key}")
    (tmp_path / "data.jsonl").write_text(
        json.dumps({"id": "1", "text": "a", "question": "q?", "answer": "yes"})
    )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(merge_overrides(rest, {key: in_recipe})))
    argv = [str(recipe) if arg == "RECIPE" else arg for arg in argv]
    argv += ["--set", f"{key}={json.dumps(in_set)}"] if given != "recipe" else []
    argv += [f"{flag}={in_flag}"] if given == "flag" else []
    with pytest.raises(SystemExit) as exit_info:
        run(argv)
    err = capsys.readouterr().err
    winner = {"recipe": in_recipe, "set": in_set, "flag": in_flag}[given]
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {recipe}: {key}"), err
    assert f"(got {(winner[0] if isinstance(winner, list) else winner)!r})" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl", "recipe.yaml"], "nothing is written"


@pytest.mark.parametrize("command", COMMANDS[:-1])
def test_every_command_states_the_rule_in_its_help(command: str) -> None:
    result = CliRunner().invoke(build_app(), [*command.split(), "--help"], terminal_width=400)
    assert result.exit_code == 0 and " ".join(PRECEDENCE.split()) in " ".join(result.output.split())
