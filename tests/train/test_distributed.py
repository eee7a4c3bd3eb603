"""torchrun on CPU (gloo, 2 processes): DDP and FSDP2 give the losses of one process with the same global
batch, and an FSDP checkpoint written by 2 processes resumes on 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from biomamba.train import train

RUN_TINY = Path(__file__).with_name("run_tiny.py")


def _recipe(corpus: Path, **train_changes: object) -> dict:
    train_section = {
        "corpus": str(corpus),
        "architecture": {
            "model_type": "gpt2",
            "n_embd": 32,
            "n_layer": 2,
            "n_head": 2,
            "n_positions": 64,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
        },
        "seq_len": 32,
        "micro_batch_size": 2,
        "global_batch_size": 4,
        "max_steps": 6,
        "lr": 3e-3,
        "schedule": "constant",
        "warmup_steps": 2,
        "ema_decay": 0.9,
        "save_every": 3,
        "progress": False,
    }
    train_section.update(train_changes)
    return {"name": "dist", "seed": 1, "train": train_section}


def _losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if "loss" in r]


def _torchrun(recipe: dict, run_dir: Path, nproc: int, resume: bool = False) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    args = json.dumps({"recipe": recipe, "output_dir": str(run_dir), "resume": resume})
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        str(RUN_TINY),
        args,
    ]
    done = subprocess.run(command, env=env, capture_output=True, timeout=240)
    assert done.returncode == 0, done.stderr.decode()[-4000:]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_ddp_and_fsdp_match_one_process_and_fsdp_resumes_on_another_world_size(tmp_path: Path, corpus: Path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(_recipe(corpus), output_dir=tmp_path / "single")
    finally:
        torch.set_num_threads(threads)
    expected = _losses(tmp_path / "single")
    assert len(expected) == 6

    _torchrun(_recipe(corpus, distributed="ddp"), tmp_path / "ddp", nproc=2)
    torch.testing.assert_close(_losses(tmp_path / "ddp"), expected, rtol=1e-5, atol=1e-6)

    # FSDP2 on 2 processes for 3 steps, then the same run continued by ONE process from its sharded state.
    _torchrun(_recipe(corpus, distributed="fsdp", max_steps=3), tmp_path / "fsdp", nproc=2)
    torch.testing.assert_close(_losses(tmp_path / "fsdp"), expected[:3], rtol=1e-5, atol=1e-6)
    assert (tmp_path / "fsdp" / "checkpoints" / "step-00000003" / "optimizer" / ".metadata").is_file()
    train(_recipe(corpus, max_steps=6), output_dir=tmp_path / "fsdp", resume=True)
    torch.testing.assert_close(_losses(tmp_path / "fsdp"), expected, rtol=1e-5, atol=1e-6)
