"""torchrun on CPU (gloo, 2 processes): DDP and FSDP2 give the losses of one process with the same global
batch, for GPT-2 and for biomamba's Mamba2; sharded checkpoints resume on another world size (2 -> 1, and
1 -> 2 -> 1). All the 2-process runs share one torchrun launch, which is most of the cost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.factories.corpora import logged_losses as _losses
from tests.factories.recipes import GPT2_ARCHITECTURE, PADDED_MAMBA2_ARCHITECTURE, train_recipe
from tests.factories.scripts import torchrun

from biomamba.train import train

GPT2 = {**GPT2_ARCHITECTURE, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
MAMBA2 = PADDED_MAMBA2_ARCHITECTURE  # the label smoothing over the real ids runs under DDP/FSDP too
RUN = {
    "max_steps": 6,
    "lr": 3e-3,
    "schedule": "constant",
    "warmup_steps": 2,
    "ema_decay": 0.9,
    "save_every": 3,
}


def _recipe(corpus: Path, architecture: dict, **train_changes: object) -> dict:
    return train_recipe(corpus, name="dist", seed=1, architecture=architecture, **{**RUN, **train_changes})


def _one_process(recipe: dict, run_dir: Path, resume: bool = False) -> list[float]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(recipe, output_dir=run_dir, resume=resume)
    finally:
        torch.set_num_threads(threads)
    return _losses(run_dir)


def _close(actual: list[float], expected: list[float]) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_ddp_and_fsdp_match_one_process_and_fsdp_resumes_on_another_world_size(tmp_path: Path, corpus: Path):
    gpt2 = _one_process(_recipe(corpus, GPT2), tmp_path / "gpt2-single")
    mamba = _one_process(_recipe(corpus, MAMBA2, label_smoothing=0.1), tmp_path / "mamba-single")
    assert len(gpt2) == len(mamba) == 6
    # Mamba2 under FSDP starts from a checkpoint ONE process wrote at step 2 (1 -> 2 processes).
    mamba_fsdp = _recipe(corpus, MAMBA2, label_smoothing=0.1, distributed="fsdp")
    _close(
        _one_process({**mamba_fsdp, "train": {**mamba_fsdp["train"], "max_steps": 2}}, tmp_path / "m"),
        mamba[:2],
    )

    def job(recipe: dict, name: str, resume: bool = False) -> dict:
        return {"recipe": recipe, "output_dir": str(tmp_path / name), "resume": resume}

    torchrun(
        [
            job(_recipe(corpus, GPT2, distributed="ddp"), "gpt2-ddp"),
            job(_recipe(corpus, MAMBA2, label_smoothing=0.1, distributed="ddp"), "mamba-ddp"),
            job(_recipe(corpus, GPT2, distributed="fsdp", max_steps=3), "gpt2-fsdp"),
            job({**mamba_fsdp, "train": {**mamba_fsdp["train"], "max_steps": 4}}, "m", resume=True),
        ],
        nproc=2,
    )
    _close(_losses(tmp_path / "gpt2-ddp"), gpt2)
    _close(_losses(tmp_path / "mamba-ddp"), mamba)
    _close(_losses(tmp_path / "gpt2-fsdp"), gpt2[:3])
    _close(_losses(tmp_path / "m"), mamba[:4])
    for name, step in (("gpt2-fsdp", 3), ("m", 4)):
        checkpoint = tmp_path / name / "checkpoints" / f"step-{step:08d}"
        assert json.loads((checkpoint / "trainer_state.json").read_text())["world_size"] == 2
        assert (checkpoint / "optimizer" / ".metadata").is_file()

    # The same runs continued by ONE process from their sharded state (2 -> 1 processes).
    _close(_one_process(_recipe(corpus, GPT2), tmp_path / "gpt2-fsdp", resume=True), gpt2)
    _close(_one_process(mamba_fsdp, tmp_path / "m", resume=True), mamba)
