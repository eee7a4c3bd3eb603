"""The registry of source types: one module per type in this package, each registering one `Reader`.

Every module here is imported with the package (`pkgutil`, like lm-eval's task folders), so a new source
type is one new module plus its tests (docs/ARCHITECTURE.md, "Adding a data source").

- `READERS` (name -> Reader, in name order), `get_reader(name)`: `.identity`, `.detect`, `.read`, `.resolve`
- `read_source_file(path, SourceConfig, FileReport)`: the documents of one input (`max_documents` applied; a
  damaged .gz sets `FileReport.damaged` at its end); `read_verified_file(...)`: the same, but a damaged .gz
  yields nothing (for tools that consume documents at once); `iter_text_documents(path, type, **fields)`
- `resolve_paths(SourceConfig, domain)`: the inputs a source names; `detect_source_type(path)`
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biomamba.data.config import SourceConfig
from biomamba.data.readers.base import READERS, Probe, Reader, get_reader, register
from biomamba.data.readers.streams import DAMAGED_REASON, Document, FileReport, damaged_line, gzip_damage
from biomamba.errors import DataError

log = logging.getLogger(__name__)

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
_registered = sorted(READERS.items())  # name order, whatever order the modules imported each other in
READERS.clear()
READERS.update(_registered)


def resolve_paths(source: SourceConfig, domain: str) -> list[str]:
    """The inputs a source names (files for file formats); a path matching nothing is a DataError."""
    return get_reader(source.type).resolve(source, domain)


def read_source_file(path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
    """Yield the documents of one input file (or hub dataset) of the given source type."""
    count = 0
    for doc in get_reader(source.type).read(path, source, report):
        report.documents += 1
        yield doc
        count += 1
        if source.max_documents is not None and count >= source.max_documents:
            return


def read_verified_file(path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
    """`read_source_file` for tools that consume documents immediately (tokenizer training, fertility,
    `data decontaminate`): a damaged gzip file yields nothing and is logged and counted as dropped."""
    if Path(path).is_file() and (reason := gzip_damage(path)) is not None:
        report.damaged = reason
        report.drop_damaged()
        log.warning(report.warnings[0])
        return
    yield from read_source_file(path, source, report)


def iter_text_documents(path: str, source_type: str = "jsonl", **fields: Any) -> Iterator[Document]:
    """Convenience for tools (tokenizer training, fertility): documents of one file, skips counted silently."""
    source = SourceConfig(type=source_type, path=path, **fields)
    yield from read_verified_file(path, source, FileReport(path))


def detect_source_type(path: str | Path) -> str:
    """The registered type whose reader claims the file's content (fallback readers last).

    A format that cannot be recognised is an error naming the file, never a guess that then reads nothing
    and reports the file as clean.
    """
    probe = Probe(Path(path))
    if not probe.path.is_file():
        raise DataError(f"{probe.path}: no such file")
    for reader in sorted(READERS.values(), key=lambda r: r.fallback):
        if reader.detect(probe):
            return reader.name
    if probe.damaged:
        raise DataError(f"{probe.path}: damaged compressed file ({probe.damaged})")
    raise DataError(f"{probe.path}: cannot tell its format from the content: pass --type")


__all__ = [
    "DAMAGED_REASON",
    "READERS",
    "Document",
    "FileReport",
    "Probe",
    "Reader",
    "damaged_line",
    "detect_source_type",
    "get_reader",
    "iter_text_documents",
    "read_source_file",
    "read_verified_file",
    "register",
    "resolve_paths",
]
