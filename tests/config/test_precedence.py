"""Every command that reads a recipe follows one rule: a flag beats `--set`, which beats the recipe file.

Each case gives one key three ways through the real `biomamba` entry point, each value invalid in its own way,
so the command stops at validation (nothing is loaded or written) and its one-line error names the value that
won: the recipe's alone, `--set`'s over the recipe, the flag's over both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from biomamba.cli.main import build_app, run
from biomamba.config import PRECEDENCE


@dataclass(frozen=True)
class Case:
    argv: list[str]  # the command up to its options; RECIPE is replaced by the recipe file
    key: str  # the dotted recipe key under test
    flag: str | None  # the command's flag for that key (None: the command has only --set)
    values: tuple[Any, Any, Any]  # (recipe, --set, flag), each rejected by the schema
    recipe: dict[str, Any] = field(default_factory=dict)  # the rest of a recipe that validates
    recipe_option: str | None = None  # how the recipe is passed when it is not the first argument


def _write_data_files(tmp_path: Path) -> None:
    """The files the cases' recipes name (a schema checks that they exist)."""
    (tmp_path / "text.jsonl").write_text(json.dumps({"id": "1", "text": "a"}) + "\n")
    (tmp_path / "qa.jsonl").write_text(json.dumps({"id": "1", "question": "q?", "answer": "yes"}) + "\n")


def _cases(tmp_path: Path) -> dict[str, Case]:
    text, qa = str(tmp_path / "text.jsonl"), str(tmp_path / "qa.jsonl")
    return {
        "train": Case(["train", "RECIPE", "--output-dir", str(tmp_path / "run")], "train.lr", "--lr",
                      (-1.0, -2.0, -3.0)),
        "finetune": Case(["finetune", "RECIPE", "--output-dir", str(tmp_path / "ft")], "finetune.method",
                         "--method", ("m1", "m2", "m3"),
                         {"finetune": {"task": "sft-qa", "base_model": "m",
                                       "train_data": [{"format": "pubmedqa", "path": qa}]}}),
        "data build": Case(["data", "build", "RECIPE"], "data.heldout_fraction", "--heldout-fraction",
                           (2.0, 3.0, 4.0),
                           {"data": {"sources": {"pubmed": [{"type": "jsonl", "path": text}]},
                                     "ratios": {"pubmed": 1.0}}}),
        "tokenizer train": Case(["tokenizer", "train", "RECIPE"], "tokenizer.vocab_size", "--vocab-size",
                                (1, 2, 3)),
        "models create": Case(["models", "create", "RECIPE"], "model.vocab_size", "--vocab-size", (-1, -2, -3)),
        "eval run": Case(["eval", "run", "m"], "eval.seeds", "--seeds", (-1, -2, -3), recipe_option="--recipe"),
        "quantize": Case(["quantize", "m"], "quantize.group_size", "--group-size", (3, 5, 7),
                         recipe_option="--recipe"),
        "export": Case(["export", "m", "--output", str(tmp_path / "rel")], "export.formats", "--format",
                       (["f1"], ["f2"], ["f3"]), recipe_option="--recipe"),
        "serve": Case(["serve", "m"], "serve.port", "--port", (70001, 70002, 70003), recipe_option="--recipe"),
        "demo": Case(["demo", "--output-dir", str(tmp_path / "demo")], "demo.base.max_steps", "--base-steps",
                     (-1, -2, -3), {"demo": {"base": {"lr": 0.001}}}, recipe_option="--recipe"),
        "recipe check": Case(["recipe", "check", "RECIPE"], "train.lr", None, (-1.0, -2.0, -3.0)),
    }  # fmt: skip


def _with(recipe: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """`recipe` with `dotted` set to `value` (nested sections created)."""
    node = recipe
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return recipe


def _argv(case: Case, recipe: Path, given: str) -> list[str]:
    argv = [str(recipe) if arg == "RECIPE" else arg for arg in case.argv]
    if case.recipe_option:
        argv += [case.recipe_option, str(recipe)]
    if given in ("set", "flag"):
        argv += ["--set", f"{case.key}={yaml.safe_dump(case.values[1], default_flow_style=True).strip()}"]
    if given == "flag":
        flag_value = case.values[2]
        for item in flag_value if isinstance(flag_value, list) else [flag_value]:
            argv.append(f"{case.flag}={item}")
    return argv


def _winner(case: Case, given: str) -> str:
    value = case.values[{"recipe": 0, "set": 1, "flag": 2}[given]]
    return repr(value[0] if isinstance(value, list) else value)


COMMANDS = list(_cases(Path("/unused")))


@pytest.mark.parametrize("given", ["recipe", "set", "flag"])
@pytest.mark.parametrize("command", COMMANDS)
def test_flag_beats_set_beats_recipe(
    command: str, given: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = _cases(tmp_path)[command]
    _write_data_files(tmp_path)
    if given == "flag" and case.flag is None:
        pytest.skip(f"`biomamba {command}` has no flag for {case.key}, only --set")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(_with(case.recipe, case.key, case.values[0])))
    with pytest.raises(SystemExit) as exit_info:
        run(_argv(case, recipe, given))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {recipe}: {case.key}"), err
    assert f"(got {_winner(case, given)})" in lines[0], lines[0]
    written = {p.name for p in tmp_path.iterdir()} - {"recipe.yaml", "text.jsonl", "qa.jsonl"}
    assert not written, written


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "recipe check"])
def test_every_command_states_the_rule_in_its_help(command: str) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(build_app(), [*command.split(), "--help"], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert " ".join(PRECEDENCE.split()) in " ".join(result.output.split())
