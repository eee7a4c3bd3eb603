"""Exact resume after SIGKILL (GPT-2 with dropout: RNG states matter), and save-then-exit on SIGTERM (Mamba2),
with real child processes; keep_last pruning on the way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from tests.factories.recipes import PADDED_MAMBA2_ARCHITECTURE

from biomamba.train import train
from biomamba.train.checkpoint import latest_checkpoint, read_safetensors_dir

RUN_TINY = Path(__file__).with_name("run_tiny.py")


def _launch(args: dict) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, str(RUN_TINY), json.dumps(args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _records(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip().endswith("}")]


def _losses(run_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in _records(run_dir) if "loss" in r and not r.get("skipped")]


def _wait_for_step(child: subprocess.Popen, run_dir: Path, step: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert child.poll() is None, child.communicate()[1].decode()[-2000:]
        if any(r.get("step", 0) >= step for r in _records(run_dir)):
            return
        time.sleep(0.02)
    raise AssertionError(f"child never reached step {step}")


def _reference(tiny_recipe: dict, run_dir: Path) -> list[tuple[int, float]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the children run with OMP_NUM_THREADS=1: same kernels, same bits
    try:
        summary = train(tiny_recipe, output_dir=run_dir)
    finally:
        torch.set_num_threads(threads)
    assert summary.stopped == "completed" and summary.steps == 12
    # save_every 3, keep_last 2: steps 3 and 6 were written, then pruned; nothing else is left behind
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-00000009", "step-00000012"]
    return _losses(run_dir)


def _mamba2(tiny_recipe: dict) -> dict:
    """The same run with biomamba's Mamba2, its vocabulary padded."""
    return {**tiny_recipe, "train": {**tiny_recipe["train"], "architecture": PADDED_MAMBA2_ARCHITECTURE}}


def test_sigkill_then_resume_reproduces_the_loss_sequence_bitwise(tmp_path: Path, tiny_recipe: dict) -> None:
    expected = _reference(tiny_recipe, tmp_path / "reference")
    run_dir = tmp_path / "killed"
    child = _launch({"recipe": tiny_recipe, "output_dir": str(run_dir), "sleep": 0.2})
    _wait_for_step(child, run_dir, 7)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    survivor = latest_checkpoint(run_dir / "checkpoints")
    assert survivor is not None and 6 <= int(survivor.name.split("-")[1]) < 12
    assert _losses(run_dir)[-1][0] < 12  # it really was cut short

    resumed = _launch({"recipe": tiny_recipe, "output_dir": str(run_dir), "resume": True})
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err.decode()[-3000:]
    assert _losses(run_dir) == expected  # exact float equality, every step
    final = read_safetensors_dir(run_dir / "final")
    reference_final = read_safetensors_dir(tmp_path / "reference" / "final")
    assert final.keys() == reference_final.keys()
    assert all(torch.equal(final[k], reference_final[k]) for k in final)
    ema = read_safetensors_dir(run_dir / "final-ema")
    assert all(
        torch.equal(ema[k], read_safetensors_dir(tmp_path / "reference" / "final-ema")[k]) for k in ema
    )


def test_sigterm_saves_a_checkpoint_then_exits_and_resumes_exactly(tmp_path: Path, tiny_recipe: dict) -> None:
    tiny_recipe = _mamba2(tiny_recipe)
    expected = _reference(tiny_recipe, tmp_path / "reference")
    run_dir = tmp_path / "terminated"
    child = _launch({"recipe": tiny_recipe, "output_dir": str(run_dir), "sleep": 0.2})
    _wait_for_step(child, run_dir, 4)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 128 + signal.SIGTERM, err.decode()[-3000:]
    summary = json.loads(out.decode().split("SUMMARY ", 1)[1])
    assert summary["stopped"] == "signal:SIGTERM"
    stopped_at = summary["steps"]
    assert 4 <= stopped_at < 12
    saved = latest_checkpoint(run_dir / "checkpoints")
    assert (
        saved is not None and saved.name == f"step-{stopped_at:08d}"
    )  # saved at the step it stopped, not before
    resumed = _launch({"recipe": tiny_recipe, "output_dir": str(run_dir), "resume": True})
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err.decode()[-3000:]
    assert _losses(run_dir) == expected
