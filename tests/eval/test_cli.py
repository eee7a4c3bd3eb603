"""`biomamba eval ...` commands end to end on tiny models, and one-line user errors."""

from __future__ import annotations

import json

import pytest
from tests.eval.conftest import FIXTURES
from tests.factories.scripts import invoke_cli, run_main

from biomamba.errors import BiomambaError


def test_eval_tasks_lists_biomedical_and_general():
    result = invoke_cli(["eval", "tasks"])
    assert result.exit_code == 0
    assert "pubmedqa_test" in result.output and "truthfulqa_mc2" in result.output


def test_eval_run_compare_and_report(tiny_dir, tmp_path):
    outputs = []
    for family in ("gpt2", "llama"):
        out = tmp_path / f"{family}.json"
        args = ["eval", "run", tiny_dir / family, "--output", out, "--set", "eval.bootstrap_resamples=200"]
        args += ["--tasks", "pubmedqa,arc_easy,medqa_4options"]
        args += ["--task-file", f"pubmedqa={FIXTURES / 'pubmedqa_ori_pqal.json'}"]
        args += ["--task-file", f"arc_easy={FIXTURES / 'arc_easy.jsonl'}"]
        args += ["--task-file", f"medqa_4options@fr={FIXTURES / 'medqa_4options.jsonl'}"]
        result = invoke_cli(args)
        assert result.exit_code == 0, result.output
        outputs.append(out)
    data = json.loads(outputs[0].read_text())
    assert data["format"] == "biomamba-results/1"
    assert set(data["tasks"]) == {"pubmedqa", "arc_easy", "medqa_4options@fr"}
    assert data["tasks"]["arc_easy"]["predictions"][0]["prompt_sha"]
    compared = invoke_cli(["eval", "compare", *outputs, "--output", tmp_path / "cmp.json"])
    assert compared.exit_code == 0, compared.output
    assert set(json.loads((tmp_path / "cmp.json").read_text())) == set(data["tasks"])
    report = invoke_cli(["report", *outputs, "--output", tmp_path / "report"])
    assert report.exit_code == 0, report.output
    assert (tmp_path / "report" / "report.md").is_file() and (tmp_path / "report" / "accuracy.png").is_file()


def test_eval_perplexity_on_a_text_file(tiny_dir, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("The hyoid bone develops from the second and third pharyngeal arches. " * 4)
    args = ["eval", "perplexity", tiny_dir / "gpt2", "--text", f"clinical={text}", "--seq-len", "16"]
    result = invoke_cli([*args, "--output", tmp_path / "ppl.json"])
    assert result.exit_code == 0, result.output
    assert "clinical: ppl" in result.output
    assert json.loads((tmp_path / "ppl.json").read_text())["perplexity"]["clinical"]["tokens"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task-file", "nope=x.jsonl"], "unknown task 'nope'"),
        (["--tasks", "arc_easy"], "no file for task(s) arc_easy"),
        (["--tasks", "arc_easy"], "or NAME=hub:DATASET[:CONFIG[:SPLIT]]"),  # hub copies are native too
        (["--task-file", "arc_easy=missing.jsonl"], "missing.jsonl: task file for 'arc_easy' not found"),
        (["--task-file", "arc_easy=x", "--set", "eval.seeds=0"], "eval.seeds"),
    ],
)
def test_user_errors_are_one_line(args, message, tiny_dir):
    result = invoke_cli(["eval", "run", tiny_dir / "gpt2", *args])
    assert isinstance(result.exception, BiomambaError)
    assert message in str(result.exception)


def test_run_keeps_an_english_file_and_its_translation_apart(tiny_dir, tmp_path, capsys):
    """`--task-file medqa_4options=x.jsonl --task-file medqa_4options=x.fr.jsonl`: both run, one row each."""
    import shutil

    english = shutil.copy(FIXTURES / "medqa_4options.jsonl", tmp_path / "x.jsonl")
    french = shutil.copy(FIXTURES / "medqa_4options.jsonl", tmp_path / "x.fr.jsonl")
    out = tmp_path / "multi.json"
    args = ["eval", "run", str(tiny_dir / "gpt2"), "--task-file", f"medqa_4options={english}"]
    args += ["--task-file", f"medqa_4options={french}", "--output", str(out)]
    args += ["--set", "eval.bootstrap_resamples=100"]
    code, _, err = run_main(args, capsys)
    assert code == 0, err
    tasks = json.loads(out.read_text())["tasks"]
    assert set(tasks) == {"medqa_4options", "medqa_4options@fr"}
    assert (tasks["medqa_4options"]["language"], tasks["medqa_4options"]["file"]) == ("en", str(english))
    assert (tasks["medqa_4options@fr"]["language"], tasks["medqa_4options@fr"]["file"]) == ("fr", str(french))
    assert tasks["medqa_4options"]["n"] == tasks["medqa_4options@fr"]["n"] == 4
    # --tasks NAME runs every language of the task, NAME@LANG only that copy
    code, _, err = run_main([*args, "--tasks", "medqa_4options@fr"], capsys)
    assert code == 0, err
    assert set(json.loads(out.read_text())["tasks"]) == {"medqa_4options@fr"}


@pytest.mark.parametrize("as_folder", [False, True])
def test_run_reads_every_file_of_one_task_as_one_task(as_folder, tiny_dir, tmp_path):
    """Results are keyed by task: a second file of the same task is read into it, never dropped; and BioASQ
    ships one golden file per year and batch: `NAME=FOLDER` scores them all as one task."""
    folder = tmp_path / "golden"
    folder.mkdir()
    first, second = folder / "7B1_golden.json", folder / "8B1_golden.json"
    first.write_text((FIXTURES / "bioasq_taskb_golden.json").read_text())
    data = json.loads(first.read_text())
    data["questions"][0]["id"] = "new-question-of-8b"
    second.write_text(json.dumps(data, indent=1))
    out = tmp_path / "r.json"
    args = ["eval", "run", tiny_dir / "gpt2", "--output", out, "--set", "eval.bootstrap_resamples=100"]
    paths = [folder] if as_folder else [first, second]
    result = invoke_cli(args + [a for path in paths for a in ("--task-file", f"bioasq_yesno={path}")])
    assert result.exit_code == 0, result.output
    task = json.loads(out.read_text())["tasks"]["bioasq_yesno"]
    assert task["n"] == 3 and len(task["predictions"]) == 3  # 2 of 7B1, 1 new of 8B1 (one duplicate id)
    assert set(task["file_sha256"]) == {str(first), str(second)} and task["format"] == "bioasq"
