"""Helpers of the compress tests: their model sizes, and a MedQA file and a corpus of the clinical text."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.factories import models
from tests.factories.benchmarks import medqa_file
from tests.factories.corpora import token_corpus
from tests.factories.tokenizers import CLINICAL_TEXT as TEXT
from tests.factories.tokenizers import bpe_tokenizer


def build_model(family: str, seed: int = 0, vocab: int = 300, layers: int = 3, hidden: int = 16):
    """gpt2, llama or mistral, three layers by default (so merges have layers to slice and interpolate);
    mamba2 is the "tiny" preset. In eval mode: no dropout, so logits compare exactly."""
    if family == "mamba2":
        return models.mamba2(vocab, preset="tiny", seed=seed).eval()
    return models.tiny_model(family, vocab, seed=seed, layers=layers, hidden=hidden).eval()


def save_tiny(path: Path, family: str = "llama", seed: int = 0, tokenizer=None, **kw) -> Path:
    return models.save_dir(path, build_model(family, seed, **kw), tokenizer or bpe_tokenizer())


# in-distribution with TEXT, so a model trained on TEXT has something to get right
MEDQA = [
    ("Which drug lowers blood glucose?", ["metformin", "aspirin", "heparin", "morphine"], "A"),
    ("Which organ produces insulin?", ["liver", "pancreas", "kidney", "spleen"], "B"),
    ("Aspirin is given for which pain?", ["knee", "tooth", "chest", "back"], "C"),
    ("What reduces bias in medicine?", ["opinion", "anecdote", "case series", "randomized trials"], "D"),
    ("The powerhouse of the cell is the", ["mitochondria", "nucleus", "ribosome", "membrane"], "A"),
    ("Type 2 diabetes is treated with", ["insulin only", "metformin", "antibiotics", "surgery"], "B"),
]


def write_medqa(path: Path) -> Path:
    return medqa_file(path, MEDQA)


def write_medqa_results(path: Path, tokenizer, seed: int, name: str, **extra) -> Path:
    """The eval stage's results file (zero-shot, one seed) of the tiny Llama of `seed` on MEDQA, with
    `extra` top-level entries added."""
    from biomamba.eval import evaluate
    from biomamba.eval.results import write_results

    task = write_medqa(path.with_name("medqa.jsonl"))
    model, tasks = build_model("llama", seed), [f"medqa_4options={task}"]
    res = evaluate(model, tokenizer, tasks, shots=0, seeds=1, bootstrap_resamples=50, model_name=name)
    return write_results(path, {**res, **extra})


def write_corpus(path: Path, tokenizer) -> Path:
    """A corpus dir with one held-out domain of TEXT, tokenized with `tokenizer`."""
    docs = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in TEXT]
    return token_corpus(
        path, {"heldout/pubmed": docs}, vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id
    )


def exit_and_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the real entry point (`biomamba ...`), which turns user errors into exit 2 and one line."""
    from biomamba.cli.main import run

    capsys.readouterr()  # only this command's output
    with pytest.raises(SystemExit) as stopped:
        run(args)
    return stopped.value.code, capsys.readouterr().err
