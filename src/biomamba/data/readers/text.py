"""`text`: plain text files, one document per file (what detection falls back to)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from biomamba.data.readers.base import Probe, Reader, SourceConfig, register
from biomamba.data.readers.streams import Document, FileReport, decode, read_whole


@register
class PlainText(Reader):
    """A whole plain-text file as one document (id: the file name)."""

    name = "text"
    fallback = True  # any text that no other reader claims, except markup nothing else recognised

    def detect(self, probe: Probe) -> bool:
        return bool(probe.first_line.strip()) and not probe.first_line.lstrip().startswith("<")

    def read(self, path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
        text = decode(read_whole(path, report), report, None)
        if text is not None and text.strip():
            yield Document(id=Path(path).name, text=text)
