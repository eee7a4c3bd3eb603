"""Recipe dicts as a user writes them, sized for CPU tests: pretraining on a token corpus, fine-tuning, and
supervised fine-tuning on a MedQA file written here. Keyword arguments replace or add keys of their section."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from tests.factories.corpora import write_jsonl
from tests.factories.models import MAMBA2_SHAPE

# train.architecture of a tiny GPT-2 built from scratch, and of a Mamba2 whose vocabulary 70 is padded to 80
# rows (so label smoothing must spread over the real ids only)
GPT2_ARCHITECTURE = {"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 64}
PADDED_MAMBA2_ARCHITECTURE = {**MAMBA2_SHAPE, "vocab_size": 70}


def train_recipe(corpus: Path, *, name: str = "tiny", seed: int = 0, **train: Any) -> dict:
    """A pretraining recipe on `corpus`: 32-token windows, micro-batch 2 of a global 4, no progress line."""
    section = {"corpus": str(corpus), "seq_len": 32, "micro_batch_size": 2, "global_batch_size": 4}
    return {"name": name, "seed": seed, "train": {**section, "progress": False, **train}}


def finetune_recipe(
    model_dir: Path, task: str, train_data: list[dict], *, train: dict, **finetune: Any
) -> dict:
    """Fine-tuning of `model_dir` for `task` on the `train_data` sources; `train` holds the loop's keys (the
    progress line is always off)."""
    return {
        "finetune": {"task": task, "base_model": str(model_dir), "train_data": train_data, **finetune},
        "train": {**train, "progress": False},
    }


def sft_recipe(model_dir: Path, data: Path, *, train: dict | None = None, **finetune: Any) -> dict:
    """Answer-only SFT of `model_dir` on the MedQA file `data` (64 tokens, no evaluation before training),
    one step of 4 questions unless `train` says otherwise."""
    loop = {"micro_batch_size": 4, "global_batch_size": 4, "max_steps": 1, **(train or {})}
    section = {"max_length": 64, "evaluation": {"before": False, "on_train": 0}, **finetune}
    return finetune_recipe(
        model_dir, "sft-qa", [{"format": "medqa", "path": str(data)}], train=loop, **section
    )


def write_medqa(path: Path, n: int, seed: int, bad: bool = False) -> Path:
    """MedQA-format questions whose gold option is always aspirin (learnable from the option alone); `bad`
    appends two malformed records: an answer outside the options and an empty question."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        options = ["aspirin", *rng.sample(["insulin", "metformin", "warfarin", "heparin", "atenolol"], 3)]
        rng.shuffle(options)
        record = {
            "question": f"Patient {i} needs an antiplatelet drug. Which one?",
            "options": dict(zip("ABCD", options, strict=True)),
            "answer_idx": "ABCD"[options.index("aspirin")],
            "answer": "aspirin",
            "meta_info": "step1",
        }
        records.append(record)
    if bad:
        records.append({"question": "Broken?", "options": {"A": "x", "B": "y"}, "answer_idx": "E"})
        records.append({"question": "", "options": {"A": "x", "B": "y"}, "answer_idx": "A"})
    return write_jsonl(path, records)
