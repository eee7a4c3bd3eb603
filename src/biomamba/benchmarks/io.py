"""File layouts under every benchmark format: JSON lines, one JSON document, headerless CSV, parquet.

A malformed record must be reported with its file and line (never silently dropped), so every reader
yields `(where, record)` pairs, `where` being "path:line" (parquet: "path:row N"), and the formats put it in
their errors. `layout_of` says what a file IS (a whole JSON document, JSON lines, CSV, parquet) so that a
file of the wrong layout is named as such instead of failing on its second line.
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


def _require_file(path: Path) -> None:
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file, transparently gunzipping `.gz` (several benchmarks ship gzipped)."""
    _require_file(path)
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


def base_suffix(path: Path) -> str:
    """`.jsonl` for `x.jsonl.gz`, `.json` for `x.fr.json`: the suffix that names the layout."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def layout_of(path: Path) -> str:
    """ "parquet", "csv", "json" (one JSON document: an object or an array) or "jsonl" (one record a line).

    Decided from the content, not the name: MedMCQA's `dev.json` is JSON lines, PubMedQA's `.json` files are
    one document; a text whose first line is a complete JSON value and has more lines after it is JSON lines.
    """
    suffix = base_suffix(path)
    if suffix == ".parquet":
        _require_file(path)
        return "parquet"
    if suffix in (".csv", ".tsv"):
        _require_file(path)
        return "csv"
    text = read_text(path).lstrip()
    if text.startswith("["):
        return "json"
    first, _, rest = text.partition("\n")
    if not rest.strip():
        return "json"
    try:
        json.loads(first)
    except json.JSONDecodeError:
        return "json"
    return "jsonl"


def iter_parquet(path: Path) -> Iterator[tuple[str, Any]]:
    """Rows of a parquet file (a `datasets` export) as plain dicts, with their 1-based row number."""
    _require_file(path)
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with `datasets`
        raise DataError(f"{path}: reading parquet needs pyarrow (pip install 'biomamba[parquet]')") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
    for number, row in enumerate(table.to_pylist(), start=1):
        yield f"{path}:row {number}", row


def iter_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """Records of a JSON-lines, JSON-array or parquet file (the layouts a per-record format may come in)."""
    if base_suffix(path) == ".parquet":
        yield from iter_parquet(path)
    else:
        yield from iter_json_records(path)


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
