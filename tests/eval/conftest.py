"""Tiny models and tokenizer built once per test session, plus benchmark fixtures in original formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"

CORPUS = [
    "Question: Does aspirin reduce the risk of myocardial infarction? Answer: yes",
    "Abstract: We studied 120 patients with type 2 diabetes treated with metformin.",
    "The hyoid bone develops from the second and third pharyngeal arches.",
    "Which vitamin deficiency causes scurvy? A. Vitamin C B. Vitamin D C. Vitamin K D. Iron",
    "Plants make food by photosynthesis using energy from the sun.",
    "A man is sitting on a roof. He starts pulling up roofing on a roof.",
] * 20


def build_tokenizer(path: Path):
    """A 400-token byte-level BPE (EOS doubling as BOS, no pad token, as GPT-2's), saved to `path`."""
    from biomamba.tokenizer import train_tokenizer

    return train_tokenizer(
        CORPUS,
        vocab_size=400,
        output_dir=path,
        min_frequency=0,
        special_tokens=["<|endoftext|>"],
        eos_token="<|endoftext|>",
        pad_token=None,
    )


def build_gpt2(path: Path, vocab: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=vocab, n_positions=512, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0
    )
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(path)
    return model


def build_llama(path: Path, vocab: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(path)
    return model


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with `tokenizer/`, `gpt2/` (tokenizer included) and `llama/`."""
    root = tmp_path_factory.mktemp("tiny")
    tok = build_tokenizer(root / "tokenizer")
    for name, builder in (("gpt2", build_gpt2), ("llama", build_llama)):
        builder(root / name, len(tok))
        tok.save_pretrained(root / name)
    return root


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir / "tokenizer")


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_dir / "gpt2").eval()


@pytest.fixture(scope="session")
def tiny_llama(tiny_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_dir / "llama").eval()


@pytest.fixture(scope="session")
def tiny_mamba2_dir(tiny_dir: Path) -> Path:
    """biomamba's own Mamba2 saved in the transformers Mamba2 format (tokenizer included)."""
    from transformers import AutoTokenizer

    from biomamba.models import create_model, save_model

    tok = AutoTokenizer.from_pretrained(tiny_dir / "tokenizer")
    model = create_model(
        {"d_model": 32, "n_layer": 2, "vocab_size": len(tok), "d_state": 16, "headdim": 16, "chunk_size": 16},
        seed=0,
    )
    save_model(model, tiny_dir / "mamba2", tokenizer=tok)
    return tiny_dir / "mamba2"


@pytest.fixture(scope="session")
def tiny_mamba2(tiny_mamba2_dir: Path):
    from biomamba.models import load_model

    return load_model(tiny_mamba2_dir)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
