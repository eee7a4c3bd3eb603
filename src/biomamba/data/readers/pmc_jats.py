"""`pmc_jats`: PubMed Central Open Access JATS articles (`.nxml`/`.xml`, optionally `.gz`, or `.tar.gz`
bundles of them): title, abstract and body sections; references, tables, figures and formulas are dropped.
"""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator

from biomamba.data.readers import streams
from biomamba.data.readers.base import Probe, Reader, SourceConfig, register
from biomamba.data.readers.streams import Document, FileReport, element_text, read_whole

_JATS_DROP = {"ref-list", "table-wrap", "table", "fig", "fig-group", "disp-formula", "inline-formula",
              "supplementary-material", "graphic", "media", "table-wrap-foot", "ack", "fn-group", "app-group"}  # fmt: skip


_BUNDLE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


@register
class PmcJats(Reader):
    """JATS articles: a single `.nxml`/`.xml(.gz)` file, or every article inside a `.tar.gz` bundle.

    Ids are PMC ids (`identity`), so one article in two bundles stays once in a corpus.
    """

    name = "pmc_jats"
    identity = "pmc"

    def detect(self, probe: Probe) -> bool:
        if probe.path.name.endswith(_BUNDLE_SUFFIXES) and tarfile.is_tarfile(probe.path):
            return True
        return probe.looks_like_xml() and b"<article" in probe.head

    def read(self, path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
        if path.endswith(_BUNDLE_SUFFIXES):
            yield from _bundle_documents(path, report)
        elif data := read_whole(path, report):  # nothing to parse in a missing or empty file (counted)
            yield from _jats_document(data, report, None)


def _bundle_documents(path: str, report: FileReport) -> Iterator[Document]:
    try:
        with tarfile.open(path, "r:*") as bundle:
            for member in bundle:
                if member.isfile() and member.name.endswith((".nxml", ".xml")):
                    data = bundle.extractfile(member)
                    if data is not None:
                        yield from _jats_document(data.read(), report, member.name)
            # tarfile stops quietly at a garbled header, and gzip checks the CRC only at the end of the
            # stream: read to the end so that a damaged bundle is noticed (then dropped whole)
            while bundle.fileobj is not None and bundle.fileobj.read(streams.READ_CHUNK_BYTES):
                pass
    except (EOFError, tarfile.TruncatedHeaderError) as exc:
        report.skip("truncated archive (rest skipped)", detail=str(exc) or type(exc).__name__)
    except (tarfile.TarError, zlib.error, OSError) as exc:  # CRC, deflate or tar header check failed
        report.damaged = str(exc) or type(exc).__name__


def _jats_document(data: bytes, report: FileReport, member: str | None) -> Iterator[Document]:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        report.skip("malformed XML record", member, str(exc))
        return
    meta = root.find(".//article-meta")
    ids = {
        el.get("pub-id-type"): (el.text or "").strip()
        for el in (meta.findall("article-id") if meta is not None else [])
    }
    doc_id = ids.get("pmc") or ids.get("pmcid") or ids.get("pmid") or ids.get("doi") or member
    title = element_text(root.find(".//article-meta/title-group/article-title"))
    abstract = _jats_sections(root.find(".//article-meta/abstract"))
    body = _jats_sections(root.find(".//body"))
    if not body and not abstract:
        report.skip("article without body or abstract", member)
        return
    if not doc_id:
        report.skip("article without id", member)
        return
    text = "\n".join(part for part in (title, abstract, body) if part)
    yield Document(id=doc_id, text=text)


def _jats_sections(element: ET.Element | None) -> str:
    """Section titles and paragraphs in reading order, without references, tables, figures or formulas."""
    if element is None:
        return ""
    lines: list[str] = []

    def visit(node: ET.Element) -> None:
        if node.tag in _JATS_DROP:
            return
        if node.tag in {"title", "p"}:
            text = _text_without(node)
            if text:
                lines.append(text)
            return
        for child in node:
            visit(child)

    visit(element)
    return "\n".join(lines)


def _text_without(node: ET.Element) -> str:
    """Text of a paragraph minus dropped children (keeping their tails) and bibliography cross-references."""
    pieces = [node.text or ""]
    for child in node:
        dropped = child.tag in _JATS_DROP or (child.tag == "xref" and child.get("ref-type") == "bibr")
        if not dropped:
            pieces.append(_text_without(child))
        pieces.append(child.tail or "")
    return " ".join("".join(pieces).split())
