"""The CLI's contract: every user error is ONE line naming the file and key, exit status 2, no traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer.main
from tests.factories.scripts import run_main
from tests.factories.tokenizers import bpe_tokenizer

from biomamba.cli.main import build_app, run

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"


def _recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    return path


DATA_OK = "data:\n  sources:\n    pubmed: [{{type: jsonl, path: {src}}}]\n  ratios: {{pubmed: 1.0}}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("trian:\n  lr: 1\n", r"bad\.yaml: trian: unknown key"),
        ("train:\n  learning_rate: 0.1\n", r"bad\.yaml: train\.learning_rate: unknown key"),
        ("train:\n  lr: fast\n", r"bad\.yaml: train\.lr: .*valid number.*'fast'"),
        (
            "train:\n  micro_batch_size: 0\n",
            r"bad\.yaml: train\.micro_batch_size: .*greater than or equal to 1",
        ),
        (
            "finetune:\n  task: sft-qa\n  base_model: gpt2\n  train_data: [{format: pubmedqa, path: missing.json}]\n",
            r"bad\.yaml: finetune\.train_data\.0\.path: file not found: missing\.json",
        ),
        (
            DATA_OK.replace("pubmed: 1.0", "pubmed: 0.9"),
            r"bad\.yaml: data: ratios must sum to 1 \(they sum to 0\.9\)",
        ),
        ("train: [1, 2\n", r"bad\.yaml: invalid YAML"),
    ],
    ids=["unknown-section", "unknown-key", "wrong-type", "batch-zero", "missing-file", "ratios", "yaml"],
)
def test_bad_recipe_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    src = tmp_path / "pubmed.jsonl"
    src.write_text('{"id": "1", "text": "a"}\n')
    path = _recipe(tmp_path, text.format(src=src) if "{src}" in text else text)
    code, out, err = run_main(["recipe", "check", str(path)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: ")
    assert re.search(expected, lines[0]), lines[0]


def test_the_same_errors_stop_a_stage_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _recipe(tmp_path, "train:\n  micro_batch_size: 0\n")
    code, _, err = run_main(["train", str(path), "--output-dir", str(tmp_path / "run")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "train.micro_batch_size" in err
    assert not (tmp_path / "run" / "final").exists()


def test_missing_corpus_source_stops_the_data_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sources may be globs or hub names, so their files are checked when the corpus is built."""
    tokenizer = tmp_path / "tok"
    bpe_tokenizer(output_dir=tokenizer)
    (tmp_path / "text.txt").write_text("the cell and the drug\n")  # a file that is no tokenizer
    path = _recipe(tmp_path, DATA_OK.format(src="absent.jsonl"))
    out = tmp_path / "out"
    for tok, expected in [(tmp_path / "text.txt", "cannot load"), (tokenizer, "absent.jsonl")]:
        argv = ["data", "build", str(path), "--tokenizer", str(tok), "--output-dir", str(out)]
        code, _, err = run_main(argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert expected in err
    assert "data.sources.pubmed" in err
    assert not (out / "manifest.json").exists()


def test_set_overrides_the_recipe_and_is_validated(capsys: pytest.CaptureFixture[str]) -> None:
    check_demo = ["recipe", "check", str(RECIPES / "demo.yaml")]
    code, out, _ = run_main([*check_demo, "--set", "train.seq_len=128"], capsys)
    assert code == 0 and "ok" in out
    code, _, err = run_main([*check_demo, "--set", "data.ratios.c4=0.3"], capsys)
    assert code == 2 and "data: ratios must sum to 1 (they sum to 1.2)" in err


def test_missing_recipe_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["demo", "--recipe", str(tmp_path / "none.yaml")], capsys)
    assert code == 2 and "none.yaml" in err and "not found" in err and "Traceback" not in err


def test_shipped_recipes_without_external_files_validate(capsys: pytest.CaptureFixture[str]) -> None:
    """Recipes whose inputs are hub names or runs of earlier stages validate on any machine."""
    # finetune recipes are left out: their train/eval files are the user's downloads
    recipes = [path for path in sorted(RECIPES.glob("*.yaml")) if not path.name.startswith("finetune-")]
    assert len(recipes) >= 10
    for path in recipes:
        code, _, err = run_main(["recipe", "check", str(path)], capsys)
        assert code == 0, err


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
    return found


def test_every_command_has_useful_help(capsys: pytest.CaptureFixture[str]) -> None:
    root = typer.main.get_command(build_app())
    commands = _commands(root)
    stages = set("data tokenizer train eval finetune quantize merge generate report demo".split())
    assert stages <= {c[0] for c in commands}
    for command in [(), *commands]:
        code, out, _ = run_main([*command, "--help"], capsys)
        assert code == 0, command
        assert "Usage: biomamba" in out, command
        description = out.split("Usage:", 1)[1].split("╭", 1)[0]
        assert len(description.split()) >= 8, f"{' '.join(command)} --help says too little"


def test_exit_codes_of_commands_reach_the_shell(capsys: pytest.CaptureFixture[str]) -> None:
    app = build_app()

    @app.command("exit-with")
    def exit_with(code: int) -> None:
        raise typer.Exit(code)

    for code in (0, 3, 130):
        with pytest.raises(SystemExit) as exit_info, pytest.MonkeyPatch.context() as patch:
            patch.setattr("biomamba.cli.main.build_app", lambda: app)
            run(["exit-with", str(code)])
        assert exit_info.value.code == code


def test_unknown_option_is_a_usage_error_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """typer ships its own copy of click: its usage errors are user errors too."""
    code, _, err = run_main(["generate", "some-model", "--prompt", "hi"], capsys)
    assert code == 2 and "No such option: --prompt" in err and "Traceback" not in err


def test_merge_help_comes_from_the_method_registry(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registered row is documented in `biomamba merge --help` (base rule, parameters, defaults), and the
    registry's torch is loaded only then: `biomamba --help` lists `merge` without it."""
    from biomamba.compress.merge_methods import METHODS, TaskArithmetic

    row = TaskArithmetic(
        "dare_row_under_test", "random", False, default_normalize=False, default_rescale=True
    )
    monkeypatch.setitem(METHODS, row.name, row)
    code, out, _ = run_main(["merge", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0 and "slerp (base_model + 1 model): t " in text
    assert "linear (no base): weight (per model)" in text
    assert (
        "dare_row_under_test (base_model): int8_mask=False, normalize=False, rescale=True, lambda=1.0" in text
    )
    script = "import sys; from biomamba.cli.main import run\ntry: run(['--help'])\nfinally: print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={"PYTHONPATH": ":".join(sys.path)}
    )
    assert "merge" in done.stdout and done.stdout.split()[-1] == "False", done.stdout + done.stderr
