"""Helpers of the tests: tiny models and tokenizer for the serve tests (built in-process; nothing is downloaded)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import torch

TEXT = [
    "the patient was given aspirin for chest pain",
    "metformin lowers blood glucose in type 2 diabetes",
    "randomized controlled trials reduce bias in medicine",
] * 8


def tiny_tokenizer():
    """A 300-token byte-level BPE trained in-process by the tokenizer stage, wrapped for transformers."""
    from biomamba.tokenizer import train_tokenizer

    return train_tokenizer(
        TEXT, vocab_size=300, min_frequency=0, special_tokens=["<eos>"], eos_token="<eos>", pad_token="<eos>"
    )


def tiny_model(family: str, vocab: int = 300, positions: int = 256, window: int = 128):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if family == "gpt2":
        return GPT2LMHeadModel(
            GPT2Config(vocab_size=vocab, n_embd=16, n_layer=2, n_head=2, n_positions=positions)
        ).eval()
    if family == "mamba2":
        from biomamba.models import create_model

        return create_model("tiny", vocab_size=vocab, seed=0).eval()
    shape = dict(
        vocab_size=vocab,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=positions,
    )
    if family == "mistral":  # its KV cache has sliding-window layers
        from transformers import MistralConfig, MistralForCausalLM

        return MistralForCausalLM(MistralConfig(**shape, sliding_window=window)).eval()
    return LlamaForCausalLM(LlamaConfig(**shape)).eval()


def raw_post(url: str, body: dict) -> socket.socket:
    """POST a completion on a raw socket left open, so a test can hang up on the server mid-request."""
    host, port = url.removeprefix("http://").split(":")
    raw = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n"
    )
    sock.sendall(head.encode() + raw)
    return sock


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll `condition` until true (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
