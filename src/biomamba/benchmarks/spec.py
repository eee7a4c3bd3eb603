"""What a benchmark format is: its file layout, how one raw record is parsed, which of its fields are text.

A `Format` never renders prompts (that is the eval stage's job) and never decides a task's subset (BioASQ's
yes/no questions): it states what the file says, and refuses with `path:line: reason` what the file cannot
mean.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from biomamba.benchmarks.io import field
from biomamba.benchmarks.record import Record
from biomamba.errors import DataError

# layouts: "records" (JSON lines, a JSON array or parquet rows), "csv" (headerless rows), "dict" (one JSON
# object key -> record, PubMedQA), "document" (one JSON object holding a "questions" list, BioASQ)
Parse = Callable[[Any, str, str | None], Record]


@dataclass(frozen=True)
class Format:
    """One benchmark file format.

    `keys` are the fields whose presence identifies a record of this format (content detection; the most
    specific format whose keys are all present wins). `text_paths` name the raw record's free-text fields
    for translation: dotted paths where `x[]` walks a list, `*` a dict's values and `{}` a dict's keys.
    `sample` is one record as the file holds it (docs/eval.md, error messages); `source` says where the
    layout comes from (the original release, a hub dataset's export, llm-foundry).
    """

    name: str
    title: str
    layout: str
    keys: tuple[str, ...]
    parse: Parse
    text_paths: tuple[str, ...]
    sample: str
    source: str = "original release"
    refine: Callable[[list[Any]], bool] | None = None  # extra content check over the first records

    def describe(self) -> str:
        return f"{self.title} (format {self.name})"


def hash_id(text: str) -> str:
    """A stable id for records that carry none (MMLU rows, LAMBADA passages)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def choice_index(value: str, choices: list[str], where: str, key: str) -> int:
    if value not in choices:
        raise DataError(f"{where}: field '{key}' is {value!r}, expected one of {choices}")
    return choices.index(value)


def text_list(record: Any, key: str, where: str) -> list[str]:
    """A field that must be a list of strings (PubMedQA CONTEXTS, llm-foundry choices)."""
    values = field(record, key, list, where)
    if not all(isinstance(v, str) for v in values):
        raise DataError(f"{where}: field '{key}' must be a list of strings")
    return values


def gold_index(record: Any, key: str, count: int, where: str) -> int:
    """A 0-based integer answer index (also written as a digit string by some exports) within range."""
    raw = field(record, key, (int, str), where)
    try:
        gold = int(raw)
    except ValueError:
        raise DataError(f"{where}: field '{key}' must be an integer index, got {raw!r}") from None
    if not 0 <= gold < count:
        raise DataError(f"{where}: field '{key}' is {gold}, outside the {count} choices")
    return gold


def record_id(record: Any, keys: tuple[str, ...], fallback: str) -> str:
    """The record's own id under the first of `keys` it has, else `fallback` (a content hash)."""
    if isinstance(record, dict):
        for key in keys:
            if record.get(key) not in (None, ""):
                return str(record[key])
    return fallback
