"""Checkpoint formats: mamba-ssm <-> transformers round trips, strict key/shape errors, presets."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from tests.factories import models
from tests.factories.pickles import HostilePayload
from tests.models.conftest import tiny_model
from transformers import Mamba2ForCausalLM

from biomamba.errors import CheckpointError
from biomamba.models import create_model, family, load_model, save_model
from biomamba.models.checkpoint import convert_checkpoint, detect_format
from biomamba.models.presets import PUBLISHED, count_parameters, preset_config

IDS = torch.tensor([[3, 14, 15, 9, 2, 6, 5, 35, 8, 9, 7, 9, 3, 2, 3, 8, 4]])


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_mamba_ssm_round_trip_and_transformers_parity(tmp_path):
    model = tiny_model()
    save_model(model, tmp_path / "ssm", fmt="mamba-ssm")
    cfg = json.loads((tmp_path / "ssm/config.json").read_text())
    assert cfg["ssm_cfg"]["layer"] == "Mamba2" and cfg["d_model"] == 32 and cfg["vocab_size"] == 90
    assert {
        "rms_norm",
        "residual_in_fp32",
        "fused_add_norm",
        "pad_vocab_size_multiple",
        "tie_embeddings",
    } <= set(cfg)
    assert "norm_epsilon" not in cfg  # mamba-ssm's MambaConfig has no such field
    assert not (tmp_path / "ssm/model.safetensors").exists()
    keys = torch.load(tmp_path / "ssm/pytorch_model.bin", weights_only=True)
    assert "backbone.embedding.weight" in keys and "backbone.layers.1.mixer.A_log" in keys
    assert torch.equal(keys["lm_head.weight"], keys["backbone.embedding.weight"])  # strict load needs it
    assert detect_format(tmp_path / "ssm") == "mamba-ssm"

    convert_checkpoint(tmp_path / "ssm", tmp_path / "hf", to="hf")
    assert detect_format(tmp_path / "hf") == "hf"
    theirs = Mamba2ForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert (_logits(theirs) - _logits(model)).abs().max() <= 1e-4
    back = convert_checkpoint(tmp_path / "hf", tmp_path / "ssm2", to="mamba-ssm")  # hf -> pytorch_model.bin
    assert not (back / "model.safetensors").exists()
    state = torch.load(back / "pytorch_model.bin", weights_only=True)
    assert "lm_head.weight" in state and "backbone.embedding.weight" in state  # the tied head written too
    assert torch.equal(_logits(load_model(back)), _logits(model))


def test_reads_mamba_ssm_safetensors_layout(tmp_path):
    """Older biomamba outputs (and hand-converted ones) hold the mamba-ssm layout in model.safetensors."""
    model = tiny_model(seed=3)
    save_model(model, tmp_path / "ssm", fmt="mamba-ssm")
    state = torch.load(tmp_path / "ssm/pytorch_model.bin", weights_only=True)
    state.pop("lm_head.weight")
    save_file(state, str(tmp_path / "ssm/model.safetensors"))
    (tmp_path / "ssm/pytorch_model.bin").unlink()
    assert torch.equal(_logits(load_model(tmp_path / "ssm")), _logits(model))


def test_mamba_ssm_format_refuses_an_epsilon_it_cannot_store(tmp_path):
    model = tiny_model(norm_epsilon=1e-6)
    with pytest.raises(CheckpointError, match="norm_epsilon=1e-06 cannot be written in the mamba-ssm format"):
        save_model(model, tmp_path / "ssm", fmt="mamba-ssm")
    assert not (tmp_path / "ssm").exists()


def test_pickle_with_code_is_refused(tmp_path):
    save_model(tiny_model(), tmp_path / "m", fmt="mamba-ssm")
    torch.save({"x": HostilePayload(tmp_path / "pwned")}, tmp_path / "m/pytorch_model.bin")
    with pytest.raises(
        CheckpointError, match="pytorch_model.bin: refused to load: the pickle references posix.system,"
    ) as caught:
        load_model(tmp_path / "m")
    assert "weights_only" not in str(caught.value)  # never torch's advice to turn the check off
    assert not (tmp_path / "pwned").exists()


def test_missing_unexpected_and_wrong_shape_are_listed(tmp_path):
    save_model(tiny_model(), tmp_path / "m")
    path = tmp_path / "m/model.safetensors"
    weights = load_file(str(path))
    weights.pop("backbone.layers.0.mixer.D")
    weights["backbone.layers.0.mixer.extra"] = torch.zeros(2)
    weights["backbone.layers.1.mixer.A_log"] = torch.zeros(3)
    save_file(weights, str(path))
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "m")
    msg = str(err.value)
    assert "missing keys: backbone.layers.0.mixer.D" in msg
    assert "unexpected keys: backbone.layers.0.mixer.extra" in msg
    assert "backbone.layers.1.mixer.A_log: checkpoint (3,) vs model (8,)" in msg


def test_untied_checkpoint_keeps_its_head(tmp_path):
    model = tiny_model(tie_embeddings=False)
    with torch.no_grad():
        model.lm_head.weight.normal_()
    save_model(model, tmp_path / "u")
    assert "lm_head.weight" in load_file(str(tmp_path / "u/model.safetensors"))
    back = load_model(tmp_path / "u")
    assert back.lm_head.weight.data_ptr() != back.backbone.embeddings.weight.data_ptr()
    assert torch.equal(_logits(back), _logits(model))


def test_unsupported_and_broken_configs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a/config.json").write_text(
        json.dumps({"d_model": 8, "n_layer": 1, "vocab_size": 8, "ssm_cfg": {}})
    )
    with pytest.raises(CheckpointError, match="only Mamba2"):
        load_model(tmp_path / "a")
    (tmp_path / "a/config.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(tmp_path / "a")
    with pytest.raises(CheckpointError, match="no such model directory"):
        load_model(tmp_path / "nope")


def test_dtype_and_family(tmp_path):
    save_model(tiny_model(), tmp_path / "m")
    model = load_model(tmp_path / "m", dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and family(model) == "mamba2"
    assert family(torch.compile(model)) == "mamba2"


def test_transformers_models_load_through_the_same_call(tmp_path):
    gpt2 = models.gpt2(50, hidden=16, layers=1, positions=32)
    llama = models.llama(50, hidden=16, layers=1)
    for name, model in (("gpt2", gpt2), ("llama", llama)):
        save_model(model, tmp_path / name)
        loaded = load_model(tmp_path / name)
        assert family(loaded) == name
        ids = torch.tensor([[1, 2, 3]])
        with torch.no_grad():
            assert torch.allclose(loaded(input_ids=ids).logits, model.eval()(input_ids=ids).logits)


EXACT = {
    "130m": 128_989_632,
    "370m": 368_346_624,
    "780m": 780_161_280,
    "1.3b": 1_343_757_312,
    "2.7b": 2_702_599_680,
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_presets_match_published_sizes(name):
    cfg = preset_config(name)
    assert (cfg.d_state, cfg.headdim, cfg.expand, cfg.padded_vocab_size) == (128, 64, 2, 50288)
    count = count_parameters(cfg)
    assert count == EXACT[name]
    label = PUBLISHED[name][2]  # "130M", "1.3B": the count rounds to the published label's precision
    if label.endswith("M"):
        assert round(count / 1e7) * 10 == int(label[:-1])
    else:
        assert f"{count / 1e9:.1f}B" == label


def test_count_parameters_equals_built_model():
    for overrides in ({}, {"tie_embeddings": False, "bias": True}):
        model = create_model("tiny", **overrides)
        assert model.num_parameters() == count_parameters(model.config)
    assert count_parameters(preset_config("130m")) == 128_989_632


@pytest.mark.parametrize("fmt", ["hf", "mamba-ssm"])
def test_model_directories_name_a_tokenizer_class_transformers_4_loads(tmp_path, fmt, tokenizer):
    """transformers 5 writes "TokenizersBackend", a class transformers 4.x (which pyproject allows) lacks."""
    save_model(tiny_model(), tmp_path / "m", tokenizer, fmt=fmt)
    config = json.loads((tmp_path / "m/tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
