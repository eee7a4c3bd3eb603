"""One benchmark item as its file states it, before any prompt: the shape every consumer reads.

Evaluation renders prompts from it, finetuning turns it into a training example, decontamination indexes its
free text and translation rewrites the raw record it came from. Keeping these four on one parsed shape is what
makes "the text a model is scored on" and "the text removed from the training corpus" the same text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LETTERS = "ABCDEFGHIJ"
ANSWER_WORDS = {"yes", "no", "maybe"}


@dataclass
class Record:
    """A parsed benchmark record.

    `kind` says how it is scored: "choice" (`question` + `options`, `gold` indexes the right option), "schema"
    (WinoGrande-style: `context_options` compete for one shared `continuation`), "completion" (LAMBADA:
    `question` is the context, `options` holds the one target) or "open" (no gold among options: BioASQ
    factoid/list/summary questions, kept for decontamination). `option_labels` are what a prompt shows
    before each option (letters for lettered exams) or the options themselves for word answers (yes/no).
    `passage` is the reading context (abstract, snippets, BoolQ passage); `extra_text` is other free text
    of the record a model could have memorised (PubMedQA long answer, MedMCQA explanation, BioASQ ideal
    answers). `subtype` carries the format's own sub-kind (BioASQ question type, COPA cause/effect,
    `icl` for llm-foundry's pre-rendered queries).
    """

    id: str
    where: str
    format: str
    kind: str
    question: str
    options: list[str] = field(default_factory=list)
    gold: int | None = None
    passage: str = ""
    passages: list[str] = field(default_factory=list)
    option_labels: list[str] = field(default_factory=list)
    context_options: list[str] = field(default_factory=list)
    continuation: str = ""
    labels: list[int] | None = None  # TruthfulQA MC2: 1 for every true answer
    subtype: str = ""
    extra_text: list[str] = field(default_factory=list)
    raw: Any = None

    @classmethod
    def choice(cls, fmt: str, rid: str, where: str, question: str, options: list[str], gold: int | None,
               raw: Any, option_labels: list[str] | None = None, **fields: Any) -> Record:  # fmt: skip
        """A "choice" record, `gold` indexing `options`; a prompt shows `option_labels` before them (letters
        for lettered exams; by default the options themselves, as for word answers). `fields`: the others."""
        return cls(id=rid, where=where, format=fmt, kind="choice", question=question, options=options,
                   gold=gold, option_labels=option_labels or list(options), raw=raw, **fields)  # fmt: skip

    @property
    def answer(self) -> str:
        """Text of the gold answer ("" when the record has none)."""
        if self.kind == "schema":
            return self.continuation
        if self.gold is None or not self.options:
            return ""
        return self.options[self.gold]

    def texts(self) -> list[str]:
        """Every free text a model could be asked about or given, for n-gram decontamination.

        The question; the passage, alone and followed by the question (BoolQ prints it first); each option
        after the question and all options after it (an n-gram may span them: lettered exams print them
        together, HellaSwag scores each ending after the context); schema contexts with their continuation;
        the extra text (long answers, explanations).
        """
        out = [self.question] if self.question else []
        if self.passage:
            out += [self.passage, f"{self.passage} {self.question}"]
        if self.kind == "schema":
            out += [f"{ctx} {self.continuation}" for ctx in self.context_options]
        elif self.options and not set(self.options) <= ANSWER_WORDS:  # "yes"/"no" are no benchmark text
            out += [f"{self.question} {option}" for option in self.options]
            if len(self.options) > 1:
                out.append(" ".join([self.question, *self.options]))
        out += [t for t in self.extra_text if t]
        return out
