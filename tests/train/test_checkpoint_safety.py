"""Checkpoints from elsewhere: no code runs on resume, and damage (truncation, a flipped bit) names itself.

The hostile files are real pickles whose payload would create a file (`os.system("touch ...")`), written
into a checkpoint exactly where torch's distributed checkpoint puts its pieces (`optimizer/.metadata`, a
bytes record of `optimizer/__0_0.distcp`); the tests assert the file is never created.
"""

from __future__ import annotations

import io
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from tests.factories.pickles import HostilePayload as _Payload
from tests.factories.pickles import plant_in_optimizer_metadata
from tests.factories.recipes import GPT2_ARCHITECTURE, train_recipe

from biomamba.cli.main import run
from biomamba.train import train
from biomamba.train.checkpoint import list_checkpoints
from biomamba.train.integrity import CHECKSUM_FILE, verify_checksums, write_checksums

from .helpers import make_corpus


def _recipe(corpus: Path) -> dict:
    architecture = {**GPT2_ARCHITECTURE, "n_embd": 16, "n_layer": 1, "n_positions": 32}
    train = {"seq_len": 16, "global_batch_size": 2, "max_steps": 2, "save_every": 1, "ema_decay": 0.9}
    return train_recipe(corpus, name="safety", seed=1, architecture=architecture, **train)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(recipe file, run directory) of a finished 2-step run with checkpoints at steps 1 and 2."""
    root = tmp_path_factory.mktemp("safety")
    recipe = _recipe(make_corpus(root / "corpus", train_docs=60))
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    train(recipe, output_dir=root / "run")
    return path, root / "run"


@pytest.fixture
def run_dir(trained: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the trained run directory for one test to damage."""
    copy = tmp_path / "run"
    shutil.copytree(trained[1], copy)
    return copy


def _resume(recipe: Path, run_dir: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    argv = ["train", str(recipe), "--output-dir", str(run_dir), "--max-steps", "3", "--no-progress"]
    with pytest.raises(SystemExit) as done:
        run([*argv, *extra])
    return int(done.value.code), capsys.readouterr().err


def _latest(run_dir: Path) -> Path:
    return list_checkpoints(run_dir / "checkpoints")[-1]


def test_a_hostile_optimizer_metadata_is_refused_and_runs_nothing(
    trained: tuple[Path, Path], run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    for checkpoint in list_checkpoints(run_dir / "checkpoints"):  # both: no fallback may run it either
        plant_in_optimizer_metadata(checkpoint, marker)
    code, err = _resume(trained[0], run_dir, capsys, "--resume-from", str(_latest(run_dir)))
    assert not marker.exists()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "optimizer/.metadata: refused to load: it references posix.system" in lines[0]


def test_a_hostile_bytes_record_in_the_optimizer_shard_is_refused(
    trained: tuple[Path, Path], run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torch.distributed.checkpoint.filesystem import _StorageInfo
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata

    marker = tmp_path / "pwned"
    optimizer = _latest(run_dir) / "optimizer"
    metadata = pickle.loads((optimizer / ".metadata").read_bytes())
    name = next(k for k, v in metadata.state_dict_metadata.items() if isinstance(v, BytesStorageMetadata))
    index = next(i for i in metadata.storage_data if i.fqn == name)
    buffer = io.BytesIO()
    torch.save(_Payload(marker), buffer)  # what torch.load(weights_only=False) would execute
    (optimizer / "__0_1.distcp").write_bytes(buffer.getvalue())
    metadata.storage_data[index] = _StorageInfo("__0_1.distcp", 0, len(buffer.getvalue()))
    (optimizer / ".metadata").write_bytes(pickle.dumps(metadata))
    write_checksums(_latest(run_dir))  # as an attacker would: checksums are no defence here
    code, err = _resume(trained[0], run_dir, capsys, "--resume")
    assert not marker.exists()
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"optimizer value {name!r}: refused to load: it is not plain data" in err


def test_metadata_pointing_outside_the_checkpoint_is_refused(run_dir: Path) -> None:
    from torch.distributed.checkpoint.filesystem import _StorageInfo

    from biomamba.errors import CheckpointError
    from biomamba.train.safe_dcp import read_metadata

    optimizer = _latest(run_dir) / "optimizer"
    metadata = pickle.loads((optimizer / ".metadata").read_bytes())
    index = next(iter(metadata.storage_data))
    metadata.storage_data[index] = _StorageInfo("../../../../etc/passwd", 0, 10)
    (optimizer / ".metadata").write_bytes(pickle.dumps(metadata))
    with pytest.raises(CheckpointError, match=r"points outside the checkpoint directory \('\.\./"):
        read_metadata(optimizer)


def test_a_genuine_checkpoint_records_checksums_and_resumes(
    trained: tuple[Path, Path], run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    latest = _latest(run_dir)
    assert verify_checksums(latest)
    recorded = yaml.safe_load((latest / CHECKSUM_FILE).read_text())["files"]
    assert {"model/model.safetensors", "optimizer/.metadata", "trainer_state.json"} <= set(recorded)
    code, err = _resume(trained[0], run_dir, capsys, "--resume")
    assert code == 0, err
    assert _latest(run_dir).name == "step-00000003"


def _flip_bit(path: Path, offset_from_end: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "piece", "problem"),
    [
        (_flip_bit, "model/model.safetensors", "sha256 mismatch"),
        (_truncate, "optimizer/__0_0.distcp", "truncated or extended"),
        (_flip_bit, "rng/rank-00000.json", "sha256 mismatch"),
    ],
)
def test_a_damaged_latest_checkpoint_is_reported_and_the_previous_one_resumed(
    trained: tuple[Path, Path], run_dir: Path, capsys: pytest.CaptureFixture[str], damage, piece, problem
) -> None:
    checkpoints = run_dir / "checkpoints"
    damage(checkpoints / "step-00000002" / piece)
    code, err = _resume(trained[0], run_dir, capsys, "--resume")
    assert code == 0, err
    assert f"step-00000002/{piece}: {problem}" in err
    assert "set aside as corrupt-step-00000002, resuming from step-00000001" in err
    assert (checkpoints / "corrupt-step-00000002").is_dir()  # kept for inspection, never resumed or pruned
    assert "resumed from" in err and "step-00000001 at step 1" in err
    rewritten = list_checkpoints(checkpoints)  # steps 2 and 3 trained again from the intact step 1
    assert [p.name for p in rewritten] == ["step-00000001", "step-00000002", "step-00000003"]
    assert all(verify_checksums(p) for p in rewritten)


def test_when_no_checkpoint_is_intact_the_error_names_each_and_moves_nothing(
    trained: tuple[Path, Path], run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoints = run_dir / "checkpoints"
    for name in ("step-00000001", "step-00000002"):
        _truncate(checkpoints / name / "model" / "model.safetensors")
    code, err = _resume(trained[0], run_dir, capsys, "--resume")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "no intact checkpoint to resume from" in err
    assert "step-00000002/model/model.safetensors: truncated" in err
    assert "step-00000001/model/model.safetensors: truncated" in err
    assert [p.name for p in list_checkpoints(checkpoints)] == ["step-00000001", "step-00000002"]


def test_a_truncated_checkpoint_without_checksums_is_one_line_naming_the_previous(
    trained: tuple[Path, Path], run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checkpoints written before checksums existed still fail in one line, naming the one to try."""
    latest = _latest(run_dir)
    for checkpoint in list_checkpoints(run_dir / "checkpoints"):
        (checkpoint / CHECKSUM_FILE).unlink()
    _truncate(latest / "model" / "model.safetensors")
    code, err = _resume(trained[0], run_dir, capsys, "--resume")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "step-00000002/model/model.safetensors: unreadable weights" in err
    assert "--resume-from" in err and "step-00000001" in err
