"""Tiny random models of every family biomamba reads, and the model directories users hand over.

One set of shape words for all families (`hidden`, `layers`, `heads`, `positions`), each builder seeding
torch itself, so a test's model depends only on the arguments it names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

# The small Mamba2 most stage tests use (mamba-ssm field names); `mamba2(..., **fields)` overrides it.
MAMBA2_SHAPE = {"d_model": 32, "n_layer": 2, "d_state": 8, "headdim": 8, "chunk_size": 8}


def gpt2(
    vocab: int,
    *,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    positions: int = 128,
    dropout: float | None = None,
    seed: int = 0,
    **config: Any,
):
    """A random GPT-2 (`dropout` sets its three dropouts; None keeps GPT-2's 0.1)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if dropout is not None:
        config |= {"resid_pdrop": dropout, "embd_pdrop": dropout, "attn_pdrop": dropout}
    torch.manual_seed(seed)
    return GPT2LMHeadModel(
        GPT2Config(
            vocab_size=vocab, n_embd=hidden, n_layer=layers, n_head=heads, n_positions=positions, **config
        )
    )


def _llama_like(
    config_class,
    model_class,
    vocab: int,
    *,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    kv_heads: int = 2,
    positions: int = 128,
    seed: int = 0,
    **config: Any,
):
    """Llama and Mistral from the same shape words (their configs share the field names)."""
    torch.manual_seed(seed)
    shape = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": positions,
    }
    return model_class(config_class(**shape, **config))


def llama(vocab: int, **shape: Any):
    """A random Llama (MLP twice the hidden width; `kv_heads` 2, so grouped-query when `heads` is more)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return _llama_like(LlamaConfig, LlamaForCausalLM, vocab, **shape)


def mistral(vocab: int, **shape: Any):
    """A random Mistral: Llama's shape, plus `sliding_window` layers in its KV cache when given."""
    from transformers import MistralConfig, MistralForCausalLM

    return _llama_like(MistralConfig, MistralForCausalLM, vocab, **shape)


def mamba2(vocab: int, *, seed: int = 0, preset: str | None = None, **fields: Any):
    """biomamba's Mamba2 with mamba-ssm's initialisation: `MAMBA2_SHAPE`, or a named preset ("tiny"),
    with `fields` replacing config fields."""
    from biomamba.models import create_model

    config = preset if preset is not None else MAMBA2_SHAPE
    return create_model(config, seed=seed, vocab_size=vocab, **fields)


def gpt2_for(tokenizer, **shape: Any):
    """A GPT-2 sized to `tokenizer`, its EOS as BOS and EOS, without dropout (so runs reproduce)."""
    eos = tokenizer.eos_token_id
    return gpt2(len(tokenizer), dropout=0.0, bos_token_id=eos, eos_token_id=eos, **shape)


def mamba2_for(tokenizer, **fields: Any):
    """The "tiny" preset Mamba2 sized to `tokenizer`, knowing its EOS and pad ids."""
    ids = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    return mamba2(len(tokenizer), preset="tiny", **ids, **fields)


def mamba2_randomized(seed: int = 0, **fields: Any):
    """A Mamba2 whose dt/D/norm weights are also random, so no code path hides behind initial values of 1
    or 0 (what the numerics and parity tests need); 2 groups and the models tests' 90-token vocabulary
    unless `fields` say otherwise."""
    from biomamba.models import create_model

    torch.manual_seed(seed)
    model = create_model({**MAMBA2_SHAPE, "vocab_size": 90, "ngroups": 2, **fields}, seed=seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("norm.weight", "norm_f.weight", ".D")):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            if name.endswith("dt_bias"):
                p.add_(torch.randn_like(p))
    return model.eval()


BUILDERS = {"gpt2": gpt2, "llama": llama, "mistral": mistral, "mamba2": mamba2}


def tiny_model(family: str, vocab: int, **shape: Any):
    """The builder of `family` ("gpt2", "llama", "mistral", "mamba2") called with `shape`."""
    return BUILDERS[family](vocab, **shape)


def save_dir(path: Path, model, tokenizer) -> Path:
    """A model directory with its tokenizer, as users hand one over: transformers' `save_pretrained` for
    the hub families, biomamba's `save_model` (transformers Mamba2 format) for Mamba2."""
    from biomamba.models import family, save_model

    if family(model) == "mamba2":
        save_model(model, path, tokenizer)
    else:
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    return path
