"""What every reader shares: the document and per-file report types, and streaming plain or gzip input.

Memory never depends on file size: files are read in chunks (XML is cut into records on the fly, JSON lines
line by line). Every record that cannot be used is COUNTED in the file's `FileReport` with its reason, and the
first few are kept as warnings naming the file and record (`path:line N: reason`), so nothing is lost
silently; they end up in the corpus manifest.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

MAX_WARNINGS_PER_FILE = 20
READ_CHUNK_BYTES = 1 << 20
DAMAGED_REASON = "damaged compressed file (dropped whole)"
GZIP_MAGIC = b"\x1f\x8b"  # the first two bytes of every gzip member: gzip is told by content, not name


@dataclass
class Document:
    """One training document. `id` is stable across runs (PMID, JSON id/url, title): the held-out split hashes it."""

    id: str
    text: str
    year: int | None = None
    revised: int = 0  # YYYYMMDD of the record's last revision where the format says it (MEDLINE DateRevised)


@dataclass
class FileReport:
    """What happened while reading one input: documents yielded, records skipped (by reason), warnings."""

    path: str
    documents: int = 0
    skipped: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    deleted_ids: list[str] = field(default_factory=list)
    damaged: str | None = None  # why the compressed stream failed its deflate/CRC check (set while reading)
    dropped_damaged: int = 0  # records read from a damaged file and then dropped with it

    def skip(self, reason: str, where: str | None = None, detail: str = "") -> None:
        """Count a skipped record; keep the first few as warnings naming the file and record."""
        self.skipped[reason] += 1
        if len(self.warnings) < MAX_WARNINGS_PER_FILE:
            location = f"{self.path}{':' + where if where else ''}"
            self.warnings.append(f"{location}: {reason}{': ' + detail if detail else ''}")

    def drop_damaged(self) -> None:
        """Count every record read from a damaged file as dropped: nothing vouches for any of its text.

        zlib verifies a gzip member only at its end (CRC-32 and length), after the garbled output has gone to
        the parser, so records that parsed are no proof of good data; the file is dropped whole. What the
        parser made of the garbage (invalid JSON, UTF-8, XML) is noise and is replaced by the one reason.
        """
        self.dropped_damaged = self.documents
        self.documents = 0
        self.deleted_ids = []
        self.skipped = Counter({DAMAGED_REASON: self.dropped_damaged})
        self.warnings = [damaged_line(self)]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "documents": self.documents,
            "skipped": dict(sorted(self.skipped.items())),
            "deleted_ids": len(self.deleted_ids),
            "warnings": self.warnings,
            "damaged": {"reason": self.damaged, "records": self.dropped_damaged} if self.damaged else None,
        }


def damaged_line(report: FileReport) -> str:
    """One line naming a damaged file, its record count and the reason (printed and kept in the manifest)."""
    return (f"{report.path}: damaged compressed file ({report.damaged}): dropped whole, "
            f"{report.dropped_damaged} records read before the check failed")  # fmt: skip


class GzipStream:
    """Incremental gzip decompression that hands out everything decodable before a truncation.

    `gzip.GzipFile.read(n)` raises at a truncated end and discards the data it had decompressed for that
    call; decompressing chunk by chunk with zlib keeps every complete record up to the cut, and reports the
    cut separately. Multi-member files (concatenated gzip streams, as `cat a.gz b.gz`) are supported.

    Two failures are told apart: `truncated` (the bytes end before a member's end-of-stream marker: a cut
    download, whose output so far is good) and `damaged` (zlib rejects the deflate data or the member's CRC-32
    / length check fails: garbage inside the file, so output already handed out may be garbled too).
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.truncated: str | None = None
        self.damaged: str | None = None
        self.bytes_out = 0

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        decompressor = zlib.decompressobj(wbits=31)
        fed = False  # has the current member received input? (a clean end follows a finished member)
        while data := self.raw.read(chunk_size):
            while data:
                fed = True
                try:
                    out = decompressor.decompress(data)
                except zlib.error as exc:
                    self.damaged = f"{exc}"
                    return
                if out:
                    self.bytes_out += len(out)
                    yield out
                if decompressor.eof:
                    data = decompressor.unused_data
                    decompressor, fed = zlib.decompressobj(wbits=31), False
                    if not data.strip(b"\x00"):
                        data = b""
                else:
                    data = b""
        if fed and not decompressor.eof:
            self.truncated = "compressed file ended before the end-of-stream marker"


def file_chunks(path: str, report: FileReport) -> Iterator[bytes]:
    """The (decompressed) content of a plain or gzip file in chunks. A missing or empty file is a counted skip
    (no chunks); a truncated gzip ends the file with a counted warning; a damaged one sets `report.damaged`
    (the caller decides: the corpus build drops the whole file)."""
    file = Path(path)
    if not file.is_file():
        report.skip("missing file")
        return
    if file.stat().st_size == 0:
        report.skip("empty file")
        return
    with open(file, "rb") as handle:
        if handle.peek(2)[:2] == GZIP_MAGIC:
            stream = GzipStream(handle)
            yield from stream.chunks(READ_CHUNK_BYTES)
            if stream.damaged:
                report.damaged = stream.damaged
            elif stream.truncated:
                report.skip("truncated compressed file (rest of file skipped)", detail=stream.truncated)
            elif stream.bytes_out == 0:
                report.skip("empty file", detail="valid gzip with no content")
            return
        try:
            while chunk := handle.read(READ_CHUNK_BYTES):
                yield chunk
        except OSError as exc:
            report.skip("unreadable file (rest of file skipped)", detail=str(exc))


def read_whole(path: str, report: FileReport) -> bytes:
    """The whole (decompressed) content of a file that only parses as one piece (a JATS article, a text);
    empty for a missing or empty file, which `file_chunks` counts as skipped."""
    return b"".join(file_chunks(path, report))


def decode(raw: bytes, report: FileReport, where: str | None) -> str | None:
    """UTF-8 text, or None with the record counted as skipped (`invalid UTF-8`, naming the byte)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.skip("invalid UTF-8", where, f"byte {exc.start}")
        return None


def text_lines(path: str, report: FileReport) -> Iterator[tuple[int, str]]:
    """(line number, decoded line without its newline) of a plain or gzip text file; an undecodable line is a
    counted skip naming its line, and the line numbers stay those of the file."""
    pending = b""
    lineno = 0
    for chunk in file_chunks(path, report):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            lineno += 1
            try:  # inline, and the location only built for a bad line: this loop runs once per line
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                report.skip("invalid UTF-8", f"line {lineno}", f"byte {exc.start}")
    if pending and (text := decode(pending, report, f"line {lineno + 1}")) is not None:
        yield lineno + 1, text


def element_text(element: ET.Element | None) -> str:
    """All text inside an XML element, whitespace collapsed ("" for a missing element)."""
    return " ".join("".join(element.itertext()).split()) if element is not None else ""


def gzip_damage(path: str) -> str | None:
    """Why a gzip file fails its deflate/CRC check (None: not gzip, intact, or merely truncated).

    One decompression pass without parsing, for readers that hand documents on as they come and so cannot
    build a file's output aside until its end-of-stream check, as the corpus build does.
    """
    with open(path, "rb") as handle:
        if handle.peek(2)[:2] != GZIP_MAGIC:
            return None
        stream = GzipStream(handle)
        for _ in stream.chunks(READ_CHUNK_BYTES):
            pass
        return stream.damaged
