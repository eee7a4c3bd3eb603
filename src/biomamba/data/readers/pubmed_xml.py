"""`pubmed_xml`: MEDLINE/PubMed baseline and update files, `.xml` or `.xml.gz`.

Both layouts: `MedlineCitationSet` (old DTD) and `PubmedArticleSet`. Text = title + abstract; structured
abstracts keep their labels ("METHODS: ..."). Citations without an abstract are skipped and counted.
`DeleteCitation` PMIDs are recorded so that the corpus build removes them from earlier files.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from biomamba.data.readers.base import Probe, Reader, SourceConfig, register
from biomamba.data.readers.streams import Document, FileReport, element_text, file_chunks

_MARKERS = (b"<PubmedArticle", b"<MedlineCitation")  # also the start of their ...Set roots
_PUBMED_RECORD = re.compile(rb"<(PubmedArticle|PubmedBookArticle|MedlineCitation|DeleteCitation)[\s>]")
_PMID = re.compile(rb"<PMID[^>]*>\s*(\d+)\s*</PMID>")
# Record start tags that can never occur INSIDE a record of the given tag (MedlineCitation does occur inside a
# PubmedArticle): seeing one before the record's closing tag means that closing tag is missing.
_ARTICLE_SIBLING = re.compile(rb"<(PubmedArticle|PubmedBookArticle|DeleteCitation)[\s>]")
_SIBLING_START = {b"PubmedArticle": _ARTICLE_SIBLING, b"PubmedBookArticle": _ARTICLE_SIBLING,
                  b"MedlineCitation": _PUBMED_RECORD, b"DeleteCitation": _PUBMED_RECORD}  # fmt: skip


def _xml_records(path: str, report: FileReport) -> Iterator[tuple[int, bytes, bytes]]:
    """Cut a PubMed XML stream into top-level records: yields (line, tag, record bytes).

    In a `PubmedArticleSet`, `MedlineCitation` is nested in `PubmedArticle`; the scan jumps from the end of
    one record to the next start tag, so nested tags are never mistaken for records. A record whose closing
    tag is missing ends where the next record starts (and is skipped, counted): searching on for its closing
    tag would swallow the next, good record.
    """
    buffer = b""
    line = 1
    consumed_to = 0  # bytes of `buffer` already accounted for in `line`
    for chunk in file_chunks(path, report):
        buffer += chunk
        position = 0
        while True:
            start = _PUBMED_RECORD.search(buffer, position)
            if start is None:
                break
            tag = start.group(1)
            end = buffer.find(b"</" + tag + b">", start.end())
            sibling = _SIBLING_START[tag].search(buffer, start.end(), end if end >= 0 else len(buffer))
            line += buffer.count(b"\n", consumed_to, start.start())
            consumed_to = start.start()
            if sibling is not None:
                pmid = _PMID.search(buffer, start.end(), sibling.start())
                detail = f"PMID {pmid.group(1).decode()}" if pmid else ""
                report.skip(f"record without closing </{tag.decode()}>", f"line {line}", detail)
                position = sibling.start()
                continue
            if end < 0:
                position = start.start()
                break
            end += len(tag) + 3
            yield line, tag, buffer[start.start() : end]
            position = end
        keep_from = position if start is not None else max(position, len(buffer) - 64)
        line += buffer.count(b"\n", consumed_to, keep_from)
        buffer = buffer[keep_from:]
        consumed_to = 0
    if buffer.strip() and _PUBMED_RECORD.search(buffer):
        report.skip("incomplete record at end of file", f"line {line}")


@register
class PubmedXml(Reader):
    """MEDLINE/PubMed citations with a non-empty abstract (title + abstract, structured labels kept).

    Update files are this reader's hook: its ids are PMIDs (`identity`), shared with PubTator files and with
    other MEDLINE files, so the corpus build keeps the newest version (`DateRevised`) and applies the
    `DeleteCitation` PMIDs it records in `FileReport.deleted_ids`.
    """

    name = "pubmed_xml"
    identity = "pmid"

    def detect(self, probe: Probe) -> bool:
        return probe.looks_like_xml() and any(marker in probe.head for marker in _MARKERS)

    def read(self, path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
        for line, tag, record in _xml_records(path, report):
            where = f"line {line}"
            try:
                element = ET.fromstring(record)
            except ET.ParseError as exc:
                pmid = _PMID.search(record)
                detail = f"PMID {pmid.group(1).decode()}: {exc}" if pmid else str(exc)
                report.skip("malformed XML record", where, detail)
                continue
            if tag == b"DeleteCitation":
                report.deleted_ids.extend(p.text.strip() for p in element.iter("PMID") if p.text)
                continue
            citation = element if tag == b"MedlineCitation" else element.find(".//MedlineCitation")
            if citation is None:
                citation = element.find(".//BookDocument")
            pmid = (citation.findtext("PMID") or "").strip() if citation is not None else ""
            if not pmid:
                report.skip("record without PMID", where)
                continue
            abstract = _abstract_text(citation.find(".//Abstract"))
            if not abstract:
                report.skipped["no abstract"] += 1
                continue
            title = element_text(citation.find(".//ArticleTitle")) or element_text(
                citation.find(".//BookTitle")
            )
            text = f"{title}\n{abstract}" if title else abstract
            yield Document(id=pmid, text=text, year=_year(citation), revised=_revised(citation))


def _abstract_text(abstract: ET.Element | None) -> str:
    """Join AbstractText sections, prefixing each with its Label (BACKGROUND: ...) like PubMed displays them."""
    if abstract is None:
        return ""
    parts = []
    for section in abstract.findall("AbstractText"):
        body = element_text(section)
        if not body:
            continue
        label = (section.get("Label") or "").strip()
        parts.append(f"{label}: {body}" if label else body)
    return "\n".join(parts)


def _revised(citation: ET.Element) -> int:
    """`DateRevised` (else `DateCompleted`) as YYYYMMDD: which of two versions of one PMID is newer; 0 if none."""
    for tag in ("DateRevised", "DateCompleted"):
        node = citation.find(tag)
        if node is None:
            continue
        parts = [(node.findtext(key) or "").strip() for key in ("Year", "Month", "Day")]
        if all(p.isdigit() for p in parts):
            return int(parts[0]) * 10_000 + int(parts[1]) * 100 + int(parts[2])
    return 0


def _year(citation: ET.Element) -> int | None:
    for xpath in (".//Article/Journal/JournalIssue/PubDate/Year", ".//PubDate/Year", ".//DateCompleted/Year"):
        node = citation.find(xpath)
        if node is not None and (node.text or "").strip().isdigit():
            return int(node.text.strip())
    medline_date = citation.find(".//PubDate/MedlineDate")
    if medline_date is not None and medline_date.text:
        match = re.match(r"\s*(\d{4})", medline_date.text)
        if match:
            return int(match.group(1))
    return None
