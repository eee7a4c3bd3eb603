"""Our mamba-ssm directories against mamba-ssm itself: its ``MambaConfig`` fields, its ``MambaLMHeadModel``
key names and shapes at every preset's dimensions, and its own ``from_pretrained`` (strict load) on what
``biomamba models convert --to mamba-ssm`` and ``biomamba export`` write; and the other way round, what
mamba-ssm's ``save_pretrained`` writes loads in biomamba with the same tensors.

mamba-ssm runs in a child process from the reference install (``scripts/mamba-ssm-reference.sh``, which
``make test`` runs; BIOMAMBA_MAMBA_SSM_REF overrides its location), so nothing of it leaks into this process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tests.factories.scripts import ROOT, invoke_cli
from tests.models.conftest import tiny_model

from biomamba.models import load_model, save_model
from biomamba.models.checkpoint import config_to_ssm, hf_to_ssm_keys
from biomamba.models.mamba2 import Mamba2LMHeadModel
from biomamba.models.presets import PUBLISHED, preset_config

REFERENCE = Path(os.environ.get("BIOMAMBA_MAMBA_SSM_REF", ROOT / ".venv" / "mamba-ssm-ref"))

pytestmark = pytest.mark.skipif(
    not (REFERENCE / "mamba_ssm").is_dir(),
    reason=f"mamba-ssm reference not installed at {REFERENCE} (run: make test, or scripts/mamba-ssm-reference.sh)",
)


def ask_mamba_ssm(tmp_path: Path, requests: list[dict]) -> list:
    """Answers from mamba-ssm's own code, in one child process (importing it costs seconds)."""
    req, ans = tmp_path / "requests.json", tmp_path / "answers.json"
    req.write_text(json.dumps(requests))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REFERENCE), str(ROOT)])}
    probe = Path(__file__).with_name("mamba_ssm_probe.py")
    done = subprocess.run(
        [sys.executable, str(probe), str(req), str(ans)], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(ans.read_text())


def _our_ssm_state(model: Mamba2LMHeadModel) -> dict[str, torch.Tensor]:
    state = hf_to_ssm_keys(model.state_dict())
    if model.config.tie_embeddings:
        state["lm_head.weight"] = state["backbone.embedding.weight"]
    return state


def _assert_same_tensors(theirs: dict[str, torch.Tensor], ours: dict[str, torch.Tensor]) -> None:
    assert sorted(theirs) == sorted(ours)
    for key, value in ours.items():
        assert torch.equal(theirs[key], value), key


@pytest.mark.parametrize("tied", [True, False])
def test_mamba_ssm_loads_what_convert_and_export_write(tmp_path, tied, tokenizer):
    model = tiny_model(seed=4, tie_embeddings=tied)
    save_model(model, tmp_path / "hf", tokenizer)
    done = invoke_cli(["models", "convert", tmp_path / "hf", tmp_path / "ssm", "--to", "mamba-ssm"])
    assert done.exit_code == 0, done.output
    done = invoke_cli(["export", tmp_path / "hf", "-o", tmp_path / "release"])
    assert done.exit_code == 0, done.output  # no --format: a Mamba2 release carries the mamba_ssm/ copy
    ssm_dirs = [tmp_path / "ssm", tmp_path / "release" / "mamba_ssm"]
    for d in ssm_dirs:  # exactly what state-spaces/mamba2-* holds
        assert {"config.json", "pytorch_model.bin"} <= {p.name for p in d.iterdir()}
        assert not (d / "model.safetensors").exists()
    fields, *loads = ask_mamba_ssm(
        tmp_path,
        [{"op": "fields"}]
        + [
            {"op": "load", "dir": str(d), "weights": str(tmp_path / f"w{i}.pt")}
            for i, d in enumerate(ssm_dirs)
        ],
    )
    for i, d in enumerate(ssm_dirs):
        assert set(json.loads((d / "config.json").read_text())) <= set(fields)
        theirs = torch.load(tmp_path / f"w{i}.pt", weights_only=True)
        _assert_same_tensors(theirs, _our_ssm_state(model))
        assert loads[i]["n_params"] == sum(p.numel() for p in model.parameters())


def test_biomamba_loads_what_mamba_ssm_writes(tmp_path):
    config = {
        "d_model": 48,
        "n_layer": 2,
        "vocab_size": 100,
        "ssm_cfg": {"layer": "Mamba2", "d_state": 16, "headdim": 12, "ngroups": 2, "chunk_size": 16},
        "pad_vocab_size_multiple": 16,
    }
    ask_mamba_ssm(tmp_path, [{"op": "write", "config": config, "dir": str(tmp_path / "theirs"), "seed": 5}])
    theirs = torch.load(tmp_path / "theirs" / "pytorch_model.bin", weights_only=True)
    ours = load_model(tmp_path / "theirs")
    _assert_same_tensors(theirs, _our_ssm_state(ours))


def test_key_names_and_shapes_match_at_every_preset(tmp_path):
    """One layer of each published preset (130m ... 2.7b), built on the meta device by mamba-ssm."""
    requests, ours = [], []
    for name in PUBLISHED:
        cfg = dataclasses.replace(preset_config(name), n_layer=1)
        requests.append({"op": "shapes", "config": config_to_ssm(cfg)})
        with torch.device("meta"):
            model = Mamba2LMHeadModel(cfg)
        ours.append({k: list(v.shape) for k, v in _our_ssm_state(model).items()})
    for name, theirs, mine in zip(PUBLISHED, ask_mamba_ssm(tmp_path, requests), ours, strict=True):
        assert theirs == mine, name
