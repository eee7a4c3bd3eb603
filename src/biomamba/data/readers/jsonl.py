"""`jsonl`: JSON lines (plain or `.gz`) with a configurable text field: the C4/OLMo shard format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biomamba.data.readers.base import Probe, Reader, SourceConfig, register
from biomamba.data.readers.streams import Document, FileReport, text_lines

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")  # the names JSON lines files go by (C4: .json.gz)


@register
class JsonLines(Reader):
    """JSON lines with `text_field`; the id is `id_field`, else `id`, else `url`, else `file:line`."""

    name = "jsonl"

    def detect(self, probe: Probe) -> bool:
        return probe.first_line.lstrip().startswith("{")

    def read(self, path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
        stem = Path(path).name
        for lineno, text in text_lines(path, report):
            if not text.strip():
                continue
            where = f"line {lineno}"
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                report.skip("invalid JSON", where, exc.msg)
                continue
            if not isinstance(record, dict):
                report.skip("JSON line is not an object", where)
                continue
            if (value := text_field(record, source, report, where)) is None:
                continue
            keys = [source.id_field] if source.id_field else ["id", "url"]
            found = (str(record[key]) for key in keys if record.get(key) not in (None, ""))
            yield Document(id=next(found, f"{stem}:{lineno}"), text=value)


def text_field(record: dict[str, Any], source: SourceConfig, report: FileReport, where: str) -> str | None:
    """The record's `text_field` when it is a string; else None, the record counted as skipped."""
    value = record.get(source.text_field)
    if not isinstance(value, str):
        report.skip(f"no string field '{source.text_field}'", where)
        return None
    return value
