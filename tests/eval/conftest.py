"""Tiny models and tokenizer built once per test session, plus benchmark fixtures in original formats."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.factories import models
from tests.factories.corpora import write_jsonl  # noqa: F401  (the eval tests import it from here)
from tests.factories.tokenizers import bpe_tokenizer

FIXTURES = Path(__file__).parent / "fixtures"

CORPUS = [
    "Question: Does aspirin reduce the risk of myocardial infarction? Answer: yes",
    "Abstract: We studied 120 patients with type 2 diabetes treated with metformin.",
    "The hyoid bone develops from the second and third pharyngeal arches.",
    "Which vitamin deficiency causes scurvy? A. Vitamin C B. Vitamin D C. Vitamin K D. Iron",
    "Plants make food by photosynthesis using energy from the sun.",
    "A man is sitting on a roof. He starts pulling up roofing on a roof.",
] * 20


def plain_log_probs(model, ids: list[int]) -> torch.Tensor:
    """[T, V] log-softmax of one plain forward pass: nothing batched, padded, shared or cached."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits, -1)


def reference_loglik(model, enc) -> float:
    """The log-likelihood of an `Encoded` request's continuation from one plain forward of its input."""
    logp = plain_log_probs(model, enc.inputs)[-len(enc.continuation) :]
    return logp.gather(-1, torch.tensor(enc.continuation)[:, None]).sum().item()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with `tokenizer/` (a 400-token byte-level BPE, EOS doubling as BOS, no pad token, as GPT-2's),
    `gpt2/` and `llama/` (tokenizer included)."""
    root = tmp_path_factory.mktemp("tiny")
    tok = bpe_tokenizer(CORPUS, 400, specials=["<|endoftext|>"], pad=None, output_dir=root / "tokenizer")
    ids = {"bos_token_id": 0, "eos_token_id": 0}
    models.save_dir(root / "gpt2", models.gpt2(len(tok), positions=512, **ids), tok)
    models.save_dir(root / "llama", models.llama(len(tok), heads=4, positions=512, **ids), tok)
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
def tiny_mamba2_dir(tiny_dir: Path, tiny_tokenizer) -> Path:
    """biomamba's own Mamba2 saved in the transformers Mamba2 format (tokenizer included)."""
    model = models.mamba2(len(tiny_tokenizer), d_state=16, headdim=16, chunk_size=16)
    return models.save_dir(tiny_dir / "mamba2", model, tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_mamba2(tiny_mamba2_dir: Path):
    from biomamba.models import load_model

    return load_model(tiny_mamba2_dir)
