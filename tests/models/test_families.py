"""Family specs (`biomamba.models.families`) against the real architectures they describe.

Each row's claims are checked on a tiny model of that family built by transformers (or biomamba, for
Mamba2): its LoRA targets are module names the model has, `lora_fan_in_fan_out` matches GPT-2's Conv1D,
`takes_seq_idx` matches the forward's signature, `positional_limit` the config, `gguf_architecture` a name
llama.cpp's gguf package knows. Lookups see through wrappers and agree between a directory and its model.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from biomamba.errors import BiomambaError
from biomamba.models import create_model, load_model, save_model
from biomamba.models.decode_state import KVCacheState, Mamba2State, decode_state
from biomamba.models.families import FAMILIES, MAMBA2, family_named, family_of_dir, family_spec

_DECODER = dict(
    hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=64
)
TINY: dict[str, dict[str, Any]] = {
    "gpt2": dict(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=32),
    "llama": dict(_DECODER, num_key_value_heads=1),
    "mistral": dict(_DECODER, num_key_value_heads=1),
    "mixtral": dict(_DECODER, num_key_value_heads=1, num_local_experts=2, num_experts_per_tok=1),
    "qwen2": dict(_DECODER, num_key_value_heads=1),
    "gpt_neox": dict(_DECODER),
    "mamba": dict(hidden_size=16, num_hidden_layers=1, vocab_size=64, state_size=8),
    "mamba2": dict(
        hidden_size=16, num_hidden_layers=1, vocab_size=64, state_size=8, head_dim=8, num_heads=4, n_groups=1
    ),
}


def tiny(model_type: str, *, native: bool | None = None) -> nn.Module:
    """A tiny model of that model_type: biomamba's Mamba2 for "mamba2" (unless `native` is False: then
    transformers' own class, as for every other model_type)."""
    if native if native is not None else family_named(model_type).native:
        return create_model("tiny", vocab_size=64, seed=0).eval()
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **TINY[model_type])).eval()


@pytest.mark.parametrize("spec", FAMILIES, ids=lambda s: s.name)  # a new row needs its TINY config
def test_each_row_describes_its_architecture(spec) -> None:
    model = tiny(spec.name if spec.native else spec.model_types[0], native=spec.native)
    assert family_spec(model) is spec
    leaves = {name.rsplit(".", 1)[-1]: module for name, module in model.named_modules()}
    assert set(spec.lora_targets) <= set(leaves), (
        f"{spec.name}: no module named {set(spec.lora_targets) - set(leaves)}"
    )
    conv1d = {type(leaves[t]).__name__ == "Conv1D" for t in spec.lora_targets}
    assert conv1d <= {spec.lora_fan_in_fan_out}
    assert ("seq_idx" in inspect.signature(model.forward).parameters) == spec.takes_seq_idx
    config = model.config
    limit = any(isinstance(getattr(config, k, None), int) for k in ("n_positions", "max_position_embeddings"))
    assert limit == spec.positional_limit
    assert hasattr(model, "allocate_cache") == (spec.decode_state == "recurrent")
    state = decode_state(model)
    assert isinstance(state, Mamba2State if spec.decode_state == "recurrent" else KVCacheState)


def test_gguf_architectures_are_llama_cpp_names() -> None:
    gguf = pytest.importorskip("gguf")
    named = {spec.gguf_architecture for spec in FAMILIES} - {None}
    assert named and named <= {arch.name for arch in gguf.MODEL_ARCH}


def test_lookup_sees_through_compile_and_peft() -> None:
    from peft import LoraConfig, get_peft_model

    for model_type in ("mamba2", "gpt2"):
        spec = family_named(model_type)
        model = tiny(model_type)
        assert family_spec(torch.compile(model)) is spec  # wrapping only: nothing is compiled until called
        adapted = get_peft_model(tiny(model_type), LoraConfig(r=2, target_modules=list(spec.lora_targets)))
        assert family_spec(adapted) is spec


def test_transformers_own_mamba2_is_not_biomamba_s() -> None:
    """Same model_type "mamba2", different code: transformers' cache cannot continue several tokens, so eval
    scores it with full forwards, and it takes no biomamba seq_idx."""
    spec = family_spec(tiny("mamba2", native=False))
    assert spec is not MAMBA2 and not spec.native and not spec.takes_seq_idx
    assert spec.eval_backend == "full" and spec.name == "transformers-mamba2"
    assert family_named("mamba2") is MAMBA2  # a name `family` returned, or a recipe's model_type


def test_an_unknown_model_type_is_a_generic_transformer() -> None:
    from biomamba.finetune.lora import lora_targets

    spec = family_named("falcon")
    assert spec.name == "falcon" and spec.decode_state == "kv" and spec.attention and not spec.lora_targets
    with pytest.raises(BiomambaError, match="no default LoRA targets for model family 'falcon'"):
        lora_targets("falcon")
    assert lora_targets("falcon", ["query_key_value"]) == ["query_key_value"]
    with pytest.raises(TypeError, match="cannot tell the family"):
        family_spec(nn.Linear(2, 2))


@pytest.mark.parametrize("fmt", ["hf", "mamba-ssm"])
def test_a_directory_and_its_loaded_model_agree(fmt: str, tmp_path: Path) -> None:
    out = save_model(tiny("mamba2"), tmp_path / fmt, fmt=fmt)
    assert family_of_dir(out) is family_spec(load_model(out)) is MAMBA2
    gpt2 = save_model(tiny("gpt2"), tmp_path / "gpt2")
    assert family_of_dir(gpt2) is family_spec(load_model(gpt2)) is family_named("gpt2")
