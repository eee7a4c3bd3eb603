"""Question-answering records read from the benchmarks' ORIGINAL file formats.

Every loader returns `QAExample`s, one shape for all sources, so templates, collation, the classifier heads
and evaluation never care where a question came from. Loaders never drop a record silently: a record missing
its question or answer, or with an answer outside its options, goes to a `BadRecords` collector that either
raises a `DataError` naming the file and record (policy `error`) or counts it with its reason (policy
`skip`), and the counts end up in the results JSON.

Formats (see docs/finetune.md):
- PubMedQA PQA-L `ori_pqal.json`: {PMID: {QUESTION, CONTEXTS[], final_decision, ...}}; the official test split
  is the 500 ids of `test_ground_truth.json`, so the train split is PQA-L minus those ids.
- BioASQ Task B golden JSON: {"questions": [{"id", "type", "body", "exact_answer", "snippets": [{"text"}]}]};
  only `type == "yesno"` questions are used, snippets joined as the context.
- MedQA JSON lines: {"question", "options": {"A": ..}, "answer_idx": "C", "answer"} (4 or 5 options).
- MedMCQA JSON lines (`dev.json`): {"question", "opa".."opd", "cop": 1..4 (1-based), "id"}.
- Consumer-health / generic QA JSON lines with configurable question/answer/context fields.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from biomamba.errors import DataError

BadRecordPolicy = Literal["error", "skip"]
YES_NO_MAYBE: tuple[str, ...] = ("yes", "no", "maybe")
LETTERS = "ABCDEFGHIJ"


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


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None


def iter_json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, object) for each non-blank line; invalid JSON is an error naming the line.

    A broken line means a broken file (truncated download, wrong format), which skipping cannot fix.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {number}: invalid JSON: {exc.msg}") from None


def _object_lines(path: Path, bad: BadRecords) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, "path: line N", record) for each JSON-lines record that is an object; others are bad."""
    for line, record in iter_json_lines(path):
        where = f"{path}: line {line}"
        if isinstance(record, dict):
            yield line, where, record
        else:
            bad.report(where, "record is not an object")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(_text(v) for v in value).strip()
    return str(value).strip()


def _yes_no_maybe(
    id_: str, question: str, context: str, decision: Any, where: str, bad: BadRecords, source: str
) -> QAExample | None:
    if not question:
        bad.report(where, "missing question")
        return None
    answer = _text(decision).lower()
    if not answer:
        bad.report(where, "missing answer")
        return None
    if answer not in YES_NO_MAYBE:
        bad.report(where, f"answer {answer!r} is not one of yes/no/maybe")
        return None
    return QAExample(
        id=id_,
        question=question,
        answer=answer,
        context=context,
        options=YES_NO_MAYBE,
        label=YES_NO_MAYBE.index(answer),
        option_labels=YES_NO_MAYBE,
        source=source,
    )


def pubmedqa_test_ids(path: str | Path) -> set[str]:
    """The official PubMedQA test ids: keys of `test_ground_truth.json` (or of `test_set.json`)."""
    data = _read_json(Path(path))
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of PMID -> answer")
    return {str(k) for k in data}


def load_pubmedqa(
    path: str | Path,
    *,
    split: Literal["train", "test", "all"] = "all",
    test_ids: set[str] | None = None,
    bad: BadRecords | None = None,
) -> list[QAExample]:
    """PubMedQA PQA-L (`ori_pqal.json` or `test_set.json` layout), optionally restricted to a split.

    `split="train"` drops the official test ids (leakage would inflate every accuracy); `"test"` keeps only
    them. Both need `test_ids`. Order follows the file, so subsets are reproducible.
    """
    path = Path(path)
    bad = bad or BadRecords()
    if split != "all" and test_ids is None:
        raise DataError(f"{path}: split '{split}' needs the official test ids (test_ground_truth.json)")
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of PMID -> record (the PQA-L layout)")
    examples = []
    for pmid, record in data.items():
        pmid = str(pmid)
        if split == "train" and pmid in test_ids:  # type: ignore[operator]
            continue
        if split == "test" and pmid not in test_ids:  # type: ignore[operator]
            continue
        where = f"{path}: record {pmid}"
        if not isinstance(record, dict):
            bad.report(where, "record is not an object")
            continue
        example = _yes_no_maybe(
            pmid,
            _text(record.get("QUESTION")),
            _text(record.get("CONTEXTS")),
            record.get("final_decision"),
            where,
            bad,
            "pubmedqa",
        )
        if example is not None:
            examples.append(example)
    return examples


def load_bioasq_yesno(path: str | Path, *, bad: BadRecords | None = None) -> list[QAExample]:
    """BioASQ Task B golden JSON, yes/no questions only, snippets as the context."""
    path = Path(path)
    bad = bad or BadRecords()
    data = _read_json(path)
    questions = data.get("questions") if isinstance(data, dict) else None
    if not isinstance(questions, list):
        raise DataError(f"{path}: expected a JSON object with a 'questions' list (BioASQ Task B format)")
    examples = []
    for index, record in enumerate(questions):
        where = f"{path}: question {index}"
        if not isinstance(record, dict):
            bad.report(where, "question is not an object")
            continue
        if record.get("type") != "yesno":
            continue
        where = f"{path}: question {index} (id {record.get('id')})"
        snippets = record.get("snippets") or []
        context = " ".join(_text(s.get("text")) for s in snippets if isinstance(s, dict))
        example = _yes_no_maybe(
            str(record.get("id", index)),
            _text(record.get("body")),
            context,
            record.get("exact_answer"),
            where,
            bad,
            "bioasq",
        )
        if example is not None:
            if example.answer == "maybe":
                bad.report(where, "answer 'maybe' is not a BioASQ yes/no answer")
                continue
            examples.append(example)
    return examples


def _lettered(
    id_: str, question: str, options: list[str], label: int | None, where: str, bad: BadRecords, source: str
) -> QAExample | None:
    if not question:
        bad.report(where, "missing question")
        return None
    if len(options) < 2 or any(not o for o in options):
        bad.report(where, "missing or empty options")
        return None
    if label is None:
        bad.report(where, "missing answer")
        return None
    if not 0 <= label < len(options):
        bad.report(where, f"answer index {label} outside the {len(options)} options")
        return None
    return QAExample(
        id=id_,
        question=question,
        answer=options[label],
        options=tuple(options),
        label=label,
        option_labels=tuple(LETTERS[: len(options)]),
        source=source,
    )


def load_medqa(path: str | Path, *, bad: BadRecords | None = None) -> list[QAExample]:
    """MedQA (USMLE) JSON lines with 4 or 5 lettered options and `answer_idx`."""
    path = Path(path)
    bad = bad or BadRecords()
    examples = []
    for line, where, record in _object_lines(path, bad):
        raw_options = record.get("options")
        if not isinstance(raw_options, dict):
            bad.report(where, "missing or empty options")
            continue
        letters = sorted(raw_options)
        options = [_text(raw_options[k]) for k in letters]
        answer_idx = _text(record.get("answer_idx")).upper()
        if not answer_idx:
            label = None
        elif answer_idx in letters:
            label = letters.index(answer_idx)
        else:
            bad.report(where, f"answer {answer_idx!r} is not one of the options {''.join(letters)}")
            continue
        example = _lettered(
            str(record.get("id", line)), _text(record.get("question")), options, label, where, bad, "medqa"
        )
        if example is not None:
            examples.append(example)
    return examples


def load_medmcqa(path: str | Path, *, bad: BadRecords | None = None) -> list[QAExample]:
    """MedMCQA JSON lines (opa..opd, `cop` 1-based: 1 means option A)."""
    path = Path(path)
    bad = bad or BadRecords()
    examples = []
    for line, where, record in _object_lines(path, bad):
        options = [_text(record.get(key)) for key in ("opa", "opb", "opc", "opd")]
        cop = record.get("cop")
        try:
            label = None if cop is None or cop == "" else int(cop) - 1
        except (TypeError, ValueError):
            bad.report(where, f"answer cop={cop!r} is not an integer 1..4")
            continue
        example = _lettered(
            str(record.get("id", line)), _text(record.get("question")), options, label, where, bad, "medmcqa"
        )
        if example is not None:
            examples.append(example)
    return examples


def load_qa_jsonl(
    path: str | Path,
    *,
    question_field: str = "question",
    answer_field: str = "answer",
    context_field: str | None = None,
    bad: BadRecords | None = None,
) -> list[QAExample]:
    """Free-text question/answer JSON lines (consumer-health QA and any similar set)."""
    path = Path(path)
    bad = bad or BadRecords()
    examples = []
    for line, where, record in _object_lines(path, bad):
        question = _text(record.get(question_field))
        answer = _text(record.get(answer_field))
        if not question:
            bad.report(where, f"missing question (field '{question_field}')")
            continue
        if not answer:
            bad.report(where, f"missing answer (field '{answer_field}')")
            continue
        context = _text(record.get(context_field)) if context_field else ""
        examples.append(
            QAExample(str(record.get("id", line)), question, answer, context=context, source="qa-jsonl")
        )
    return examples
