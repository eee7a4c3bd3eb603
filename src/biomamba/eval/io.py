"""Readers for the original benchmark file formats that keep the line of every record.

A malformed record must be reported with its file and line (never silently dropped), so every reader
yields `(where, record)` pairs, `where` being "path:line", and the task builders put it in their errors.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biomamba.errors import DataError


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file, transparently gunzipping `.gz` (several benchmarks ship gzipped)."""
    if not path.is_file():
        raise DataError(f"{path}: task file not found")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open("r", encoding="utf-8")


def read_text(path: Path) -> str:
    try:
        with open_text(path) as handle:
            return handle.read()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def iter_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield ("path:line", object) for each non-empty line of a JSON-lines file."""
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{number}", json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})") from None


def load_json(path: Path) -> tuple[Any, str]:
    """Parse a whole-file JSON document; return it and its text (to locate records by key later)."""
    text = read_text(path)
    try:
        return json.loads(text), text
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None


def line_of(text: str, needle: str) -> int:
    """1-based line of the first occurrence of `needle` in `text` (1 when absent): locates JSON records."""
    pos = text.find(needle)
    return text.count("\n", 0, pos) + 1 if pos >= 0 else 1


def iter_json_records(path: Path) -> Iterator[tuple[str, Any]]:
    """Records of a file that is either JSON lines or one JSON array (both layouts exist in the wild)."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        data, _ = load_json(path)
        starts = _array_element_lines(text)
        for index, record in enumerate(data):
            line = starts[index] if index < len(starts) else 1
            yield f"{path}:{line}", record
        return
    yield from iter_jsonl(path)


def _array_element_lines(text: str) -> list[int]:
    """Line where each top-level element of a JSON array starts (for error messages)."""
    lines: list[int] = []
    depth = 0
    in_string = escape = False
    line = 1
    for char in text:
        if char == "\n":
            line += 1
        if in_string:
            if escape:
                escape = False
            elif char == "\\":
                escape = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
            if depth == 1:
                lines.append(line)
        elif char in "[{":
            if depth == 1:
                lines.append(line)
            depth += 1
        elif char in "]}":
            depth -= 1
    return lines


def iter_csv(path: Path) -> Iterator[tuple[str, list[str]]]:
    """Rows of a headerless CSV (MMLU) with their line numbers (multi-line cells are handled)."""
    handle = io.StringIO(read_text(path))
    reader = csv.reader(handle)
    start = 1
    try:
        for row in reader:
            where = f"{path}:{start}"
            start = reader.line_num + 1
            if row:
                yield where, row
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: invalid CSV ({exc})") from None


def field(record: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """`record[key]` checked for presence and type; a clear DataError naming file and line otherwise."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if key not in record:
        raise DataError(f"{where}: missing field '{key}'")
    value = record[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise DataError(f"{where}: field '{key}' must be {names}, got {type(value).__name__}")
    return value
