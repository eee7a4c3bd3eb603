"""Classifier heads on any biomamba causal LM (Mamba2, GPT-2, Llama, Mistral).

- `ChoiceClassifier` is BioMedLM's multiple-choice model: every (question, option) pair is one sequence, a
  linear layer maps the final hidden state of its last real token to one score, the scores of a question's
  options go through a softmax and cross-entropy (transformers' `*ForMultipleChoice` recipe, on a causal LM).
- `SequenceClassifier` is the PubMedQA/BioASQ variant: (context, question) -> yes/no/maybe from the last
  token's final hidden state.

Both pool the LAST real token because a causal model has seen the whole sequence only there. Sequences are
right-padded (causal models never look right, so padding cannot change the pooled state) and the caller
passes the index of the last real token. The language-model head is not used; LoRA may wrap the backbone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from biomamba.finetune.collate import encode
from biomamba.finetune.records import QAExample
from biomamba.finetune.templates import format_qa

HEAD_FILE = "classifier_head.safetensors"
HEAD_CONFIG = "classifier.json"


def _base_lm(model: nn.Module) -> nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def hidden_size(model: nn.Module) -> int:
    config = _base_lm(model).config
    for name in ("hidden_size", "n_embd", "d_model"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    raise TypeError(f"cannot tell the hidden size of {type(model).__name__}")


def final_hidden(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Final (normalised) hidden states [B, T, H] of a causal LM, without computing vocabulary logits."""
    from biomamba.models import family_spec

    lm = _base_lm(model)
    if family_spec(lm).native:  # biomamba's Mamba2: its backbone returns the final-normed hidden states
        return lm.backbone(input_ids)
    prefix = getattr(lm, "base_model_prefix", "")
    body = getattr(lm, prefix, None) if prefix else None
    if body is not None and body is not lm:
        return body(input_ids=input_ids).last_hidden_state
    return lm(input_ids=input_ids, output_hidden_states=True).hidden_states[-1]


def pool_last(hidden: torch.Tensor, last_index: torch.Tensor) -> torch.Tensor:
    """hidden[b, last_index[b]] for every row: [B, T, H] -> [B, H]."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, last_index.to(hidden.device)]


class SequenceClassifier(nn.Module):
    """Causal LM + linear head on the last token: [B, T] -> logits [B, num_labels]."""

    kind = "sequence"

    def __init__(self, lm: nn.Module, num_labels: int, labels: Sequence[str] = ()) -> None:
        super().__init__()
        self.lm = lm
        self.labels = list(labels)
        self.head = nn.Linear(hidden_size(lm), num_labels)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, last_index: torch.Tensor) -> torch.Tensor:
        pooled = pool_last(final_hidden(self.lm, input_ids), last_index)
        return self.head(pooled.to(self.head.weight.dtype)).float()


class ChoiceClassifier(SequenceClassifier):
    """BioMedLM's multiple-choice model: [B, C, T] (one row per option) -> scores [B, C]."""

    kind = "multiple-choice"

    def __init__(self, lm: nn.Module) -> None:
        super().__init__(lm, num_labels=1)

    def forward(self, input_ids: torch.Tensor, last_index: torch.Tensor) -> torch.Tensor:
        batch, choices, length = input_ids.shape
        flat = super().forward(input_ids.reshape(batch * choices, length), last_index.reshape(-1))
        return flat.reshape(batch, choices)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax over options (or labels) and cross-entropy, as BioMedLM trained its MC head."""
    return nn.functional.cross_entropy(logits.float(), labels.to(logits.device))


# ------------------------------------------------------------------------------------------- collation


@dataclass(frozen=True)
class EncodedQuestion:
    rows: list[list[int]]  # one token list per option (MC) or a single row (sequence classification)
    label: int


def _join(tokenizer: Any, prompt: str, tail: str, max_length: int) -> list[int]:
    """Prompt ids cut from the left so `tail` (the option, or the question's end) always survives."""
    head_ids = encode(tokenizer, prompt, special=True)
    tail_ids = encode(tokenizer, tail, special=False)[: max_length - 1]
    room = max_length - len(tail_ids)
    return head_ids[-room:] + tail_ids if room > 0 else tail_ids


def encode_choices(tokenizer: Any, example: QAExample, max_length: int) -> EncodedQuestion:
    """One sequence per option: the question (and context) followed by that option's text."""
    assert example.label is not None
    prompt = format_qa(example).prompt
    rows = [_join(tokenizer, prompt, " " + option, max_length) for option in example.options]
    return EncodedQuestion(rows, example.label)


def encode_sequence(tokenizer: Any, example: QAExample, max_length: int) -> EncodedQuestion:
    """(context, question) as one sequence, ending with the template's 'Answer:' cue."""
    assert example.label is not None
    prompt = format_qa(example).prompt
    return EncodedQuestion([_join(tokenizer, prompt, "", max_length)], example.label)


def collate_questions(
    items: Sequence[EncodedQuestion], pad_id: int, *, multiple_choice: bool
) -> dict[str, torch.Tensor]:
    """Right-pad every row of every question; MC batches need the same option count per question."""
    counts = {len(item.rows) for item in items}
    if multiple_choice and len(counts) != 1:
        raise ValueError(f"questions in one batch have different option counts {sorted(counts)}")
    length = max(len(row) for item in items for row in item.rows)
    choices = counts.pop()
    input_ids = torch.full((len(items), choices, length), pad_id, dtype=torch.long)
    last_index = torch.zeros((len(items), choices), dtype=torch.long)
    for b, item in enumerate(items):
        for c, row in enumerate(item.rows):
            input_ids[b, c, : len(row)] = torch.tensor(row)
            last_index[b, c] = len(row) - 1
    labels = torch.tensor([item.label for item in items])
    if not multiple_choice:
        input_ids, last_index = input_ids[:, 0], last_index[:, 0]
    return {"input_ids": input_ids, "last_index": last_index, "labels": labels}


# ------------------------------------------------------------------------------------------ save / load


def save_classifier(model: SequenceClassifier, out_dir: str | Path, tokenizer: Any = None) -> Path:
    """A model directory any stage can load (the backbone) plus the head and its description beside it.

    Built under a temporary name and swapped in whole, so a crash never leaves a backbone without its head.
    """
    import shutil

    from biomamba.models import save_model
    from biomamba.utils.atomic import atomic_dir

    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        inner = save_model(model.lm, tmp / "backbone", tokenizer)
        for item in inner.iterdir():
            shutil.move(str(item), tmp / item.name)
        inner.rmdir()
        save_head(model, tmp)
    return out


def save_head(model: SequenceClassifier, directory: Path) -> None:
    """The head's weights and description (kind, labels) beside a backbone or adapter in `directory`."""
    from safetensors.torch import save_file

    head = {k: v.detach().contiguous().cpu() for k, v in model.head.state_dict().items()}
    save_file(head, directory / HEAD_FILE)
    meta = {"kind": model.kind, "num_labels": model.head.out_features, "labels": model.labels}
    (directory / HEAD_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")


def load_classifier(model_dir: str | Path) -> SequenceClassifier:
    """Inverse of `save_classifier`."""
    from safetensors.torch import load_file

    from biomamba.errors import CheckpointError
    from biomamba.models import load_model

    path = Path(model_dir)
    if not (path / HEAD_CONFIG).is_file():
        raise CheckpointError(f"{path}: no {HEAD_CONFIG}; not a classifier saved by biomamba finetune")
    meta = json.loads((path / HEAD_CONFIG).read_text())
    lm = load_model(path)
    model: SequenceClassifier
    if meta["kind"] == "multiple-choice":
        model = ChoiceClassifier(lm)
    else:
        model = SequenceClassifier(lm, meta["num_labels"], meta.get("labels", ()))
    model.head.load_state_dict(load_file(path / HEAD_FILE))
    return model.eval()
