"""Question-answering training examples from benchmark files (read by biomamba.benchmarks, every format it knows).

Every loader returns `QAExample`s, one shape for all sources, so templates, collation, the classifier heads
and evaluation never care where a question came from. Loaders never drop a record silently: a record missing
its question or answer, or with an answer outside its options, goes to a `BadRecords` collector that either
raises a `DataError` naming the file and record (policy `error`) or counts it with its reason (policy
`skip`), and the counts end up in the results JSON.

Benchmark files (PubMedQA, BioASQ, MedQA, MedMCQA, in their releases or hub exports; a file, folder or glob)
are read by biomamba.benchmarks, the reader evaluation uses (formats: docs/eval.md, "Benchmark formats"), and
each parsed record becomes a `QAExample` here. PubMedQA's train split is PQA-L minus the official test ids of
`test_ground_truth.json`; BioASQ keeps its yes/no questions, snippets joined as the context. Consumer-health /
generic QA JSON lines (`load_qa_jsonl`) are not a benchmark and have configurable fields.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from biomamba.benchmarks import Record, read_benchmark
from biomamba.benchmarks import io as bio
from biomamba.benchmarks.biomedical import pubmedqa_ground_truth
from biomamba.benchmarks.registry import FAMILIES
from biomamba.errors import DataError

BadRecordPolicy = Literal["error", "skip"]


@dataclass(frozen=True)
class QAExample:
    """One question with its gold answer.

    `options` is empty for free-text answers (consumer-health QA); otherwise `label` indexes the gold option
    and `answer` is that option's text. `option_labels` are what a prompt shows before each option ("A", "B",
    ...) or the options themselves for yes/no/maybe questions, where there is nothing to enumerate.
    """

    id: str
    question: str
    answer: str
    context: str = ""
    options: tuple[str, ...] = ()
    label: int | None = None
    option_labels: tuple[str, ...] = ()
    source: str = ""

    @property
    def is_multiple_choice(self) -> bool:
        return bool(self.options)


@dataclass
class BadRecords:
    """Collects malformed records: raise on the first (policy `error`) or count them (policy `skip`)."""

    policy: BadRecordPolicy = "error"
    counts: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def report(self, where: str, reason: str) -> None:
        if self.policy == "error":
            raise DataError(f"{where}: {reason} (set finetune on_bad_record: skip to skip such records)")
        self.counts[reason] += 1
        if len(self.samples) < 10:
            self.samples.append(f"{where}: {reason}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> dict[str, Any]:
        return {"skipped": self.total, "by_reason": dict(self.counts), "first": list(self.samples)}


def _example(record: Record, bad: BadRecords) -> QAExample | None:
    """A benchmark record as a training example; one without a question or a gold answer is bad."""
    if not record.question.strip():
        bad.report(record.where, "missing question")
        return None
    if record.gold is None or not record.options:
        bad.report(record.where, "missing answer")
        return None
    context = " ".join(record.passages) if record.passages else record.passage
    return QAExample(
        id=record.id,
        question=record.question.strip(),
        answer=record.options[record.gold],
        context=context.strip(),
        options=tuple(record.options),
        label=record.gold,
        option_labels=tuple(record.option_labels),
        source=record.format.split("-")[0],
    )


def load_benchmark(
    path: str | Path,
    family: str,
    *,
    bad: BadRecords | None = None,
    keep: Callable[[Record], bool] | None = None,
) -> list[QAExample]:
    """Training examples of a benchmark file (any format biomamba.benchmarks reads for `family`)."""
    bad = bad or BadRecords()
    bench = read_benchmark(path, accept=FAMILIES[family], what=f"finetune format {family}", report=bad.report)
    examples = (_example(r, bad) for r in bench.records if keep is None or keep(r))
    return [e for e in examples if e is not None]


def pubmedqa_test_ids(path: str | Path) -> set[str]:
    """The official PubMedQA test ids: keys of `test_ground_truth.json` (or of `test_set.json`)."""
    path = Path(path)
    if path.name == "test_ground_truth.json" or path.is_dir():
        return set(pubmedqa_ground_truth(path)[0])
    return {r.id for r in read_benchmark(path, accept=("pubmedqa",)).records}


def load_pubmedqa(
    path: str | Path,
    *,
    split: Literal["train", "test", "all"] = "all",
    test_ids: set[str] | None = None,
    bad: BadRecords | None = None,
) -> list[QAExample]:
    """PubMedQA PQA-L (`ori_pqal.json` or `test_set.json` layout, or a hub export), optionally one split.

    `split="train"` drops the official test ids (leakage would inflate every accuracy); `"test"` keeps only
    them. Both need `test_ids`. Order follows the file, so subsets are reproducible.
    """
    if split != "all" and test_ids is None:
        raise DataError(f"{path}: split '{split}' needs the official test ids (test_ground_truth.json)")
    ids = test_ids or set()
    keep = {"all": None, "train": lambda r: r.id not in ids, "test": lambda r: r.id in ids}[split]
    return load_benchmark(path, "pubmedqa", bad=bad, keep=keep)


def load_bioasq_yesno(path: str | Path, *, bad: BadRecords | None = None) -> list[QAExample]:
    """BioASQ Task B golden JSON (a file, folder or glob), yes/no questions only, snippets as the context."""
    return load_benchmark(path, "bioasq", bad=bad, keep=lambda r: r.subtype == "yesno")


def load_medqa(path: str | Path, *, bad: BadRecords | None = None) -> list[QAExample]:
    """MedQA (USMLE) JSON lines with 4 or 5 lettered options and `answer_idx` (or the hub export)."""
    return load_benchmark(path, "medqa", bad=bad)


def load_medmcqa(path: str | Path, *, bad: BadRecords | None = None) -> list[QAExample]:
    """MedMCQA JSON lines (opa..opd, `cop` 1-based: 1 means option A; the hub export's 0-based)."""
    return load_benchmark(path, "medmcqa", bad=bad)


def load_qa_jsonl(
    path: str | Path,
    *,
    question_field: str = "question",
    answer_field: str = "answer",
    context_field: str | None = None,
    bad: BadRecords | None = None,
) -> list[QAExample]:
    """Free-text question/answer JSON lines (consumer-health QA and any similar set; not a benchmark)."""
    path = Path(path)
    bad = bad or BadRecords()
    examples = []
    for where, record in bio.iter_jsonl(path):
        if not isinstance(record, dict):
            bad.report(where, "record is not an object")
            continue
        question = _text(record.get(question_field))
        answer = _text(record.get(answer_field))
        if not question:
            bad.report(where, f"missing question (field '{question_field}')")
            continue
        if not answer:
            bad.report(where, f"missing answer (field '{answer_field}')")
            continue
        context = _text(record.get(context_field)) if context_field else ""
        rid = str(record.get("id", where.rpartition(":")[2]))
        examples.append(QAExample(rid, question, answer, context=context, source="qa-jsonl"))
    return examples


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(_text(v) for v in value).strip()
    return str(value).strip()
