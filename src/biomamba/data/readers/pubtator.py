"""`pubtator`: `PMID|t|title`, `PMID|a|abstract`, annotation lines, a blank line between documents."""

from __future__ import annotations

import re
from collections.abc import Iterator

from biomamba.data.readers.base import Probe, Reader, SourceConfig, register
from biomamba.data.readers.streams import Document, FileReport, text_lines

_TEXT_LINE = re.compile(r"(\d+)\|([ta])\|(.*)")  # PMID, t(itle) or a(bstract), the text


@register
class Pubtator(Reader):
    """PubTator documents: title and abstract lines; annotation lines are ignored.

    Ids are PMIDs (`identity`): a citation also read from MEDLINE XML stays once, the dated MEDLINE version.
    """

    name = "pubtator"
    identity = "pmid"

    def detect(self, probe: Probe) -> bool:
        return _TEXT_LINE.match(probe.first_line) is not None

    def read(self, path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
        current: dict[str, str] = {}

        def flush() -> Iterator[Document]:
            if current:
                abstract, title = current.get("a", "").strip(), current.get("t", "").strip()
                if not abstract:
                    report.skipped["no abstract"] += 1
                else:
                    yield Document(id=current["id"], text=f"{title}\n{abstract}" if title else abstract)
            current.clear()

        for lineno, text in text_lines(path, report):
            text = text.rstrip("\r")
            if not text.strip():
                yield from flush()
            elif match := _TEXT_LINE.fullmatch(text):
                pmid, kind, value = match.groups()
                if current.get("id") not in (None, pmid):
                    yield from flush()
                current["id"] = pmid
                current[kind] = value
            elif "\t" not in text:  # a tab: an annotation line
                report.skip("unrecognised PubTator line", f"line {lineno}")
        yield from flush()
