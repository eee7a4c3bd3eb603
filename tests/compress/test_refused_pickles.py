"""Pickled weights that torch's weights-only loader refuses: one line, no advice to turn the check off.

The hostile files are real pickles whose payload would create a file; each sits where the real layout puts
weights (`model.pt` of a quantized directory, `pytorch_model.bin` of a transformers model directory).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.factories.pickles import HostilePayload as _Payload

from biomamba.compress.quantize import quantize_model
from biomamba.errors import CheckpointError
from biomamba.models.quantized import QUANT_FILE, TORCH_FILE, load_quantized, save_quantized

from .helpers import build_model


def _assert_refused(caught: pytest.ExceptionInfo[CheckpointError], path: Path, marker: Path) -> None:
    message = str(caught.value)
    assert not marker.exists()
    assert message.startswith(f"{path}: refused to load: the pickle references posix.system")
    assert "\n" not in message and "weights_only" not in message  # never "retry with weights_only=False"


def test_a_hostile_model_pt_in_a_quantized_directory(tmp_path: Path) -> None:
    from biomamba.models import save_model

    model = build_model("gpt2", seed=0)
    out = save_quantized(model, quantize_model(model, "int8", group_size=16), save_model(model, tmp_path / "src"),
                         tmp_path / "q")  # fmt: skip
    record = json.loads((out / QUANT_FILE).read_text())
    record["weights"] = TORCH_FILE
    (out / QUANT_FILE).write_text(json.dumps(record))
    marker = tmp_path / "pwned"
    torch.save({"lm_head.weight": _Payload(marker)}, out / TORCH_FILE)
    with pytest.raises(CheckpointError) as caught:
        load_quantized(out)
    _assert_refused(caught, out / TORCH_FILE, marker)


def test_a_hostile_pytorch_model_bin_in_a_transformers_directory(tmp_path: Path) -> None:
    from biomamba.models import load_model

    directory = tmp_path / "gpt2"
    build_model("gpt2", seed=0).save_pretrained(directory)
    (directory / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    torch.save({"transformer.wte.weight": _Payload(marker)}, directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as caught:
        load_model(directory)
    _assert_refused(caught, directory, marker)
