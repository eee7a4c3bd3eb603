"""A run killed after task 3 of 6 loses nothing: a rerun into the same output redoes only tasks 4-6."""

from __future__ import annotations

import json
import shutil

import pytest
from tests.eval.conftest import FIXTURES

from biomamba.eval.results import read_results
from biomamba.eval.runner import evaluate
from biomamba.eval.tasks import TaskFile

SIX = [
    ("pubmedqa", "pubmedqa_ori_pqal.json"),
    ("medqa_4options", "medqa_4options.jsonl"),
    ("medqa_5options", "medqa_5options.jsonl"),
    ("medmcqa", "medmcqa_dev.json"),
    ("mmlu_anatomy", "anatomy_test.csv"),
    ("arc_easy", "arc_easy.jsonl"),
]


class Killed(Exception):
    """Stands for the process dying (OOM, SIGKILL, a crash) in the middle of a task."""


def _files(folder):
    folder.mkdir(exist_ok=True)
    out = []
    for task, name in SIX:
        shutil.copy(FIXTURES / name, folder / name)
        out.append(TaskFile(task, folder / name))
    return out


def _run(model, tokenizer, files, output, die_in=None, **settings):
    """evaluate() into `output` (with `settings`); returns the tasks that were scored (progress is reported
    only for them)."""
    ran: list[str] = []

    def progress(key: str, done: int, total: int) -> None:
        if key not in ran:
            ran.append(key)
        if key == die_in:
            raise Killed(key)

    evaluate(model, tokenizer, files, bootstrap_resamples=10, progress=progress, output=output, **settings)
    return ran


def test_rerun_after_a_crash_in_task_4_redoes_only_tasks_4_to_6(tmp_path, tiny_gpt2, tiny_tokenizer):
    files, output = _files(tmp_path / "data"), tmp_path / "results.json"
    with pytest.raises(Killed):
        _run(tiny_gpt2, tiny_tokenizer, files, output, die_in="medmcqa")  # task 4 dies before it is written
    first = read_results(output)
    assert list(first["tasks"]) == ["pubmedqa", "medqa_4options", "medqa_5options"]
    assert _run(tiny_gpt2, tiny_tokenizer, files, output) == ["medmcqa", "mmlu_anatomy", "arc_easy"]
    final = read_results(output)
    assert list(final["tasks"]) == [task for task, _ in SIX]
    for key in first["tasks"]:
        assert final["tasks"][key] == first["tasks"][key]  # reused as written, not recomputed
    assert _run(tiny_gpt2, tiny_tokenizer, files, output) == []  # everything done: nothing runs


def test_a_changed_file_model_or_setting_is_rerun(tmp_path, tiny_gpt2, tiny_llama, tiny_tokenizer):
    files, output = _files(tmp_path / "data"), tmp_path / "results.json"
    _run(tiny_gpt2, tiny_tokenizer, files[:2], output)
    medqa = files[1].path
    medqa.write_text(medqa.read_text().splitlines()[0] + "\n")  # the file now holds one question
    assert _run(tiny_gpt2, tiny_tokenizer, files[:2], output) == ["medqa_4options"]
    assert read_results(output)["tasks"]["medqa_4options"]["n"] == 1
    assert _run(tiny_llama, tiny_tokenizer, files[:2], output) == ["pubmedqa", "medqa_4options"]
    assert _run(tiny_llama, tiny_tokenizer, files[:2], output, limit=1) == ["pubmedqa", "medqa_4options"]
    fingerprint = read_results(output)["tasks"]["pubmedqa"]["fingerprint"]
    assert set(fingerprint) == {"model", "tokenizer", "settings", "file_sha256"}


def test_an_output_that_is_not_a_results_file_is_refused_not_overwritten(tmp_path, tiny_gpt2, tiny_tokenizer):
    from biomamba.errors import DataError

    output = tmp_path / "notes.json"
    output.write_text(json.dumps({"my": "notes"}))
    with pytest.raises(DataError, match="not a biomamba results file"):
        _run(tiny_gpt2, tiny_tokenizer, _files(tmp_path / "data")[:1], output)
    assert json.loads(output.read_text()) == {"my": "notes"}
    output.write_bytes(b'{"format": "cut')  # a file cut mid-write by something else: named with its line
    with pytest.raises(DataError, match=r"notes\.json:1: invalid JSON"):
        _run(tiny_gpt2, tiny_tokenizer, _files(tmp_path / "data")[:1], output)
    assert output.read_bytes() == b'{"format": "cut'


def test_cli_run_killed_by_sigkill_after_task_3_then_rerun_redoes_4_to_6(tmp_path, tiny_dir):
    """The real thing: `biomamba eval run` in a subprocess, SIGKILLed once the file holds three tasks while
    task 4 (a 120-question MedMCQA dev file) is being scored; the rerun scores only tasks 4-6."""
    import os
    import signal
    import subprocess
    import sys
    import time

    files = _files(tmp_path / "data")
    record = json.loads((FIXTURES / "medmcqa_dev.json").read_text().splitlines()[0])
    lines = [
        json.dumps({**record, "id": f"mm{i}", "question": f"Q{i}: {record['question']}"}) for i in range(120)
    ]
    files[3].path.write_text("\n".join(lines) + "\n")
    output = tmp_path / "results.json"
    args = [sys.executable, "-m", "biomamba.cli.main", "eval", "run", str(tiny_dir / "gpt2")]
    args += ["--output", str(output), "--batch-size", "2"]
    args += [a for f in files for a in ("--task-file", f"{f.task}={f.path}")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if output.exists() and len(json.loads(output.read_text())["tasks"]) >= 3:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert list(json.loads(output.read_text())["tasks"]) == ["pubmedqa", "medqa_4options", "medqa_5options"]
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    scored = {
        line.split(":")[0] for line in rerun.stderr.splitlines() if line.count("/") == 1 and ": " in line
    }
    assert scored == {"medmcqa", "mmlu_anatomy", "arc_easy"}
    assert list(json.loads(output.read_text())["tasks"]) == [task for task, _ in SIX]


def test_each_task_file_is_hashed_once_per_run(tmp_path, tiny_gpt2, tiny_tokenizer, monkeypatch):
    """The fingerprint takes the sha256 the reader took (SourceFile): a file's bytes are hashed once, not twice."""
    import hashlib
    from pathlib import Path

    hashed, digest = [], hashlib.file_digest
    monkeypatch.setattr(
        hashlib, "file_digest", lambda f, name: hashed.append(Path(f.name).name) or digest(f, name)
    )
    _run(tiny_gpt2, tiny_tokenizer, _files(tmp_path / "data")[:2], tmp_path / "results.json")
    assert hashed == ["pubmedqa_ori_pqal.json", "medqa_4options.jsonl"]
