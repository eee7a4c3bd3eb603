"""Guards: non-finite losses are skipped then abort the run; a full disk never damages earlier checkpoints."""

from __future__ import annotations

import errno
import math
from pathlib import Path

import pytest
import torch
from tests.factories.corpora import read_jsonl

from biomamba.data.shards import TokenShards
from biomamba.errors import CheckpointError
from biomamba.train import CausalLMLoss, PackedBatches, TrainConfig, Trainer, TrainingAborted
from biomamba.train.checkpoint import list_checkpoints

from .helpers import tiny_gpt2


def _trainer(corpus: Path, run: Path, model=None, loss=None, **changes: object) -> Trainer:
    """A tiny GPT-2 (or `model`) trained on `corpus` into `run`: 6 steps of 2 windows of 16 tokens."""
    base = {"seq_len": 16, "micro_batch_size": 2, "global_batch_size": 2, "max_steps": 6, "lr": 1e-2}
    config = TrainConfig(**{**base, "progress": False, **changes})
    batches = PackedBatches(TokenShards(corpus), 16, 2)
    return Trainer(model or tiny_gpt2(), batches, loss or CausalLMLoss(), config, run)


class _PoisonedLoss:
    """CausalLMLoss that returns NaN on the given (1-based) calls."""

    def __init__(self, poisoned: set[int]) -> None:
        self.inner = CausalLMLoss()
        self.poisoned = poisoned
        self.calls = 0

    def __call__(self, model, batch):
        self.calls += 1
        out = self.inner(model, batch)
        if self.calls in self.poisoned:
            out.loss_sum = out.loss_sum * math.nan
        return out


def test_non_finite_loss_skips_the_step_and_keeps_the_weights(tmp_path: Path, corpus: Path) -> None:
    seen: list[dict[str, torch.Tensor]] = []
    trainer = _trainer(corpus, tmp_path / "run", tiny_gpt2(dropout=0.0), _PoisonedLoss({3}), max_steps=4)
    trainer.callbacks.append(
        lambda t, r: seen.append({k: v.clone() for k, v in t.model.state_dict().items()})
    )
    result = trainer.fit()
    assert result.step == 4 and result.stopped == "completed"
    assert sum(bool(r.get("skipped")) for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")) == 1
    # 5 batches consumed for 4 optimizer steps: the poisoned one was dropped, not retried.
    assert trainer.batches.cursor == 5 * 2
    assert all(math.isfinite(v.float().sum().item()) for v in seen[-1].values())


def test_non_finite_losses_in_a_row_abort_with_a_clear_error(tmp_path: Path, corpus: Path) -> None:
    model = tiny_gpt2(dropout=0.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = _trainer(corpus, tmp_path / "run", model, _PoisonedLoss({1, 2, 3, 4}), max_nonfinite=3)
    with pytest.raises(TrainingAborted, match=r"3 non-finite losses in a row at step 0.*max_nonfinite=3"):
        trainer.fit()
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k].cpu()) for k in before)


def test_disk_full_during_a_checkpoint_leaves_the_previous_one_intact(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.distributed.checkpoint as dcp

    real_save = dcp.save
    calls = {"n": 0}

    def failing_save(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(dcp, "save", failing_save)
    run = tmp_path / "run"
    trainer = _trainer(corpus, run, save_every=2)
    with pytest.raises(
        CheckpointError, match=r"step-00000004: checkpoint not written \(disk full: No space left"
    ):
        trainer.fit()
    kept = list_checkpoints(run / "checkpoints")
    assert [p.name for p in kept] == ["step-00000002"]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]  # no partial left
    # The survivor is complete: a fresh trainer resumes from it.
    monkeypatch.setattr(dcp, "save", real_save)
    result = _trainer(corpus, run).fit(resume=True)
    assert result.step == 6 and (run / "checkpoints" / "step-00000006").is_dir()


def test_disk_full_message_names_the_surviving_checkpoint(tmp_path: Path, corpus: Path, monkeypatch) -> None:
    from biomamba.train import checkpoint as ckpt

    trainer = _trainer(corpus, tmp_path / "run", save_every=2)
    real = ckpt.write_state_json

    def full_disk(path, state):
        if "step-00000004" in str(path) and path.name == "trainer_state.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, state)

    monkeypatch.setattr(ckpt, "write_state_json", full_disk)
    with pytest.raises(CheckpointError) as caught:
        trainer.fit()
    assert "the previous checkpoint" in str(caught.value) and "step-00000002 is intact" in str(caught.value)


# Messages recorded from the real libraries writing to a full 512 KiB tmpfs (torch 2.13, safetensors 0.8,
# tokenizers): each reaches write_checkpoint as a different exception type.
_SAFETENSORS_FULL = "Error while serializing: I/O error: No space left on device (os error 28)"
_TOKENIZERS_FULL = "No space left on device (os error 28)"
_TORCH_SAVE_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"


def _trainer_failing_at_step_4(run: Path, corpus: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> Trainer:
    """A trainer whose checkpoint at step 4 (not 2) meets a full disk in the writer `how` names."""
    from safetensors import SafetensorError

    from biomamba.train import checkpoint as ckpt

    trainer = _trainer(corpus, run, save_every=2)
    real_save_model = trainer.save_model_fn

    def save_model(model, directory: Path, state) -> None:
        real_save_model(model, directory, state)
        if how == "safetensors" and trainer.step == 4:
            (directory / "model.safetensors").write_bytes(b"half")  # what a short write leaves
            raise SafetensorError(_SAFETENSORS_FULL)

    class Tokenizer:
        def save_pretrained(self, directory: str) -> None:
            if how == "tokenizers" and trainer.step == 4:
                raise Exception(_TOKENIZERS_FULL)  # tokenizers raises a bare Exception

    trainer.save_model_fn, trainer.tokenizer = save_model, Tokenizer()
    if how == "torch.save":  # inside DCP, which wraps it in its CheckpointException (a BaseException)
        import torch.distributed.checkpoint.filesystem as dcp_fs

        real = dcp_fs.torch.save

        def short_write(obj, f, *args, **kw):
            if trainer.step == 4:
                raise RuntimeError(_TORCH_SAVE_FULL)
            return real(obj, f, *args, **kw)

        monkeypatch.setattr(dcp_fs.torch, "save", short_write)
        monkeypatch.setattr(ckpt, "_free_bytes", lambda path: 0)  # the disk is full: nothing left
    return trainer


@pytest.mark.parametrize("how", ["safetensors", "tokenizers", "torch.save"])
def test_disk_full_in_any_writer_is_the_one_line_error_and_leaves_no_partial(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    run = tmp_path / "run"
    trainer = _trainer_failing_at_step_4(run, corpus, how, monkeypatch)
    with pytest.raises(CheckpointError) as caught:
        trainer.fit()
    message = str(caught.value)
    assert "step-00000004: checkpoint not written (disk full: " in message
    assert "CheckpointException" not in message  # the writer's own words, not DCP's wrapper
    assert "step-00000002 is intact" in message and "\n" not in message
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step-00000002"]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


def test_a_bug_in_a_writer_keeps_its_traceback_but_still_removes_the_partial(
    tmp_path: Path, corpus: Path
) -> None:
    run = tmp_path / "run"

    def buggy(model, directory, state):
        raise ValueError("a bug, not a full disk")

    trainer = _trainer(corpus, run)
    trainer.save_model_fn = buggy
    with pytest.raises(ValueError, match="a bug"):
        trainer.fit()
    assert not list((run / "checkpoints").iterdir())


def test_partials_of_killed_saves_are_cleaned_and_an_interrupted_swap_put_back(
    tmp_path: Path, corpus: Path
) -> None:
    run = tmp_path / "run"
    _trainer(corpus, run, max_steps=2).fit()
    root = run / "checkpoints"
    (root / ".step-00000009.partial" / "model").mkdir(parents=True)  # kill -9 during a save
    (root / "step-00000002").rename(root / ".step-00000002.old")  # kill -9 between the two renames
    (root / ".step-00000002.partial").mkdir()
    result = _trainer(corpus, run, max_steps=2).fit(resume=True)
    assert result.step == 2  # the put-back checkpoint was found and is complete
    assert sorted(p.name for p in root.iterdir()) == ["step-00000002"]


def test_a_second_trainer_on_one_run_directory_is_refused_naming_the_holder(
    tmp_path: Path, corpus: Path
) -> None:
    import os
    import subprocess
    import sys

    from biomamba.train.runlock import RunDirectoryBusy

    run = tmp_path / "run"
    holder_code = (
        "import sys, time; from biomamba.train.runlock import RunLock; lock = RunLock(sys.argv[1]); "
        "lock.acquire(); "
        "print('locked', flush=True); time.sleep(120)"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    holder = subprocess.Popen(  # another trainer's process, as far as the lock can tell
        [sys.executable, "-c", holder_code, str(run)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": src},
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        trainer = _trainer(corpus, run)
        with pytest.raises(
            RunDirectoryBusy, match=rf"another trainer is writing this run directory \(pid {holder.pid} on "
        ):
            trainer.fit()
        assert not (run / "checkpoints").exists()
    finally:
        holder.kill()  # kill -9: the kernel drops its lock, the stale .lock file stays behind
        holder.wait()
    assert (run / ".lock").is_file()
    assert trainer.fit().step == 6  # the dead holder blocks nothing
