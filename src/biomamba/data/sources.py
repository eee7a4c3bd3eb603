"""Streaming readers for every supported input format, one document at a time.

Memory never depends on file size: XML is cut into records on the fly and each record parsed alone (so a
malformed record costs that record, not the rest of the file), JSON lines are read line by line. Every record
that cannot be used is COUNTED in the file's `FileReport` with its reason, and the first few are kept as
warnings naming the file and record, so nothing is lost silently; they end up in the corpus manifest.

Formats (`SourceConfig.type`):
- `pubmed_xml`: MEDLINE/PubMed baseline and update files, `.xml` or `.xml.gz`, `MedlineCitationSet` (old DTD)
  and `PubmedArticleSet` layouts. Text = title + abstract; structured abstracts keep their labels
  ("METHODS: ..."). Citations without an abstract are skipped and counted. `DeleteCitation` PMIDs are
  recorded so that the corpus build removes them from earlier files.
- `pmc_jats`: PubMed Central Open Access JATS articles (`.nxml`/`.xml`, optionally `.gz`, or `.tar.gz` bundles
  of them): title, abstract and body sections; references, tables, figures and formulas are dropped.
- `pubtator`: `PMID|t|title`, `PMID|a|abstract`, annotation lines, blank line between documents.
- `jsonl`: JSON lines (plain or `.gz`) with a configurable text field: the C4/OLMo shard format.
- `wikitext`: raw wikitext dumps, split into articles at top-level ` = Title = ` headings.
- `text`: plain text files, one document per file.
- `hf`: a `datasets` hub name (streamed; needs the network) or a local dataset directory.
"""

from __future__ import annotations

import glob
import json
import logging
import re
import tarfile
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from biomamba.data.config import SourceConfig
from biomamba.errors import DataError

MAX_WARNINGS_PER_FILE = 20
log = logging.getLogger(__name__)


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


DAMAGED_REASON = "damaged compressed file (dropped whole)"


def damaged_line(report: FileReport) -> str:
    """One line naming a damaged file, its record count and the reason (printed and kept in the manifest)."""
    return (f"{report.path}: damaged compressed file ({report.damaged}): dropped whole, "
            f"{report.dropped_damaged} records read before the check failed")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# File discovery


def resolve_paths(source: SourceConfig, domain: str) -> list[str]:
    """Expand a source's paths (files, directories, globs) into a sorted, de-duplicated file list.

    A path that matches nothing is a user error (DataError naming the domain and the path): a typo must not
    silently produce a corpus without that source.
    """
    if source.type == "hf":
        return source.paths()
    files: list[str] = []
    for raw in source.paths():
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            found = [str(path)]
        else:
            found = sorted(p for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not found:
            raise DataError(f"data.sources.{domain}: {raw}: no such file, directory or glob match")
        files.extend(found)
    return list(dict.fromkeys(files))


def read_source_file(path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
    """Yield the documents of one input file (or hub dataset) of the given source type."""
    readers = {
        "pubmed_xml": read_pubmed_xml,
        "pmc_jats": read_pmc_jats,
        "pubtator": read_pubtator,
        "jsonl": read_jsonl,
        "wikitext": read_wikitext,
        "text": read_text_file,
        "hf": read_hf,
    }
    reader = readers[source.type]
    count = 0
    for doc in reader(path, source, report):
        report.documents += 1
        yield doc
        count += 1
        if source.max_documents is not None and count >= source.max_documents:
            return


class _GzipStream:
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

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> _GzipStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_binary(path: str, report: FileReport) -> Any:
    """Open a plain or gzip file for binary reading; a missing or empty file is a counted skip."""
    file = Path(path)
    if not file.is_file():
        report.skip("missing file")
        return None
    if file.stat().st_size == 0:
        report.skip("empty file")
        return None
    handle = open(file, "rb")  # noqa: SIM115 - closed by the caller
    if handle.peek(2)[:2] == b"\x1f\x8b":
        return _GzipStream(handle)
    return handle


READ_CHUNK_BYTES = 1 << 20


def _read_chunks(handle: Any, report: FileReport) -> Iterator[bytes]:
    """Read a plain or gzip stream in chunks; a truncated gzip ends the file with a counted warning, a damaged
    one sets `report.damaged` (the caller decides: the corpus build drops the whole file)."""
    chunk_size = READ_CHUNK_BYTES
    if isinstance(handle, _GzipStream):
        yield from handle.chunks(chunk_size)
        if handle.damaged:
            report.damaged = handle.damaged
        elif handle.truncated:
            report.skip("truncated compressed file (rest of file skipped)", detail=handle.truncated)
        elif handle.bytes_out == 0:
            report.skip("empty file", detail="valid gzip with no content")
        return
    try:
        while chunk := handle.read(chunk_size):
            yield chunk
    except OSError as exc:
        report.skip("unreadable file (rest of file skipped)", detail=str(exc))


def _lines(path: str, report: FileReport) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, raw line) of a plain or gzip text file."""
    handle = _open_binary(path, report)
    if handle is None:
        return
    with handle:
        pending = b""
        lineno = 0
        for chunk in _read_chunks(handle, report):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                lineno += 1
                yield lineno, line
        if pending:
            yield lineno + 1, pending


def _decode(raw: bytes, report: FileReport, where: str) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.skip("invalid UTF-8", where, f"byte {exc.start}")
        return None


# ---------------------------------------------------------------------------------------------------------
# PubMed / MEDLINE XML

_PUBMED_RECORD = re.compile(rb"<(PubmedArticle|PubmedBookArticle|MedlineCitation|DeleteCitation)[\s>]")
_PMID = re.compile(rb"<PMID[^>]*>\s*(\d+)\s*</PMID>")
# Record start tags that can never occur INSIDE a record of the given tag (MedlineCitation does occur inside a
# PubmedArticle): seeing one before the record's closing tag means that closing tag is missing.
_SIBLING_START = {
    b"PubmedArticle": re.compile(rb"<(PubmedArticle|PubmedBookArticle|DeleteCitation)[\s>]"),
    b"PubmedBookArticle": re.compile(rb"<(PubmedArticle|PubmedBookArticle|DeleteCitation)[\s>]"),
    b"MedlineCitation": _PUBMED_RECORD,
    b"DeleteCitation": _PUBMED_RECORD,
}


def _xml_records(path: str, report: FileReport) -> Iterator[tuple[int, bytes, bytes]]:
    """Cut a PubMed XML stream into top-level records: yields (line, tag, record bytes).

    In a `PubmedArticleSet`, `MedlineCitation` is nested in `PubmedArticle`; the scan jumps from the end of
    one record to the next start tag, so nested tags are never mistaken for records. A record whose closing
    tag is missing ends where the next record starts (and is skipped, counted): searching on for its closing
    tag would swallow the next, good record.
    """
    handle = _open_binary(path, report)
    if handle is None:
        return
    with handle:
        buffer = b""
        line = 1
        consumed_to = 0  # bytes of `buffer` already accounted for in `line`
        for chunk in _read_chunks(handle, report):
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


def _element_text(element: ET.Element | None) -> str:
    return " ".join("".join(element.itertext()).split()) if element is not None else ""


def read_pubmed_xml(path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
    """MEDLINE/PubMed citations with a non-empty abstract (title + abstract, structured labels kept)."""
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
        pmid_el = citation.find("PMID") if citation is not None else None
        if pmid_el is None or not (pmid_el.text or "").strip():
            report.skip("record without PMID", where)
            continue
        pmid = pmid_el.text.strip()
        abstract = _abstract_text(citation.find(".//Abstract"))
        if not abstract:
            report.skipped["no abstract"] += 1
            continue
        title = _element_text(citation.find(".//ArticleTitle")) or _element_text(
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
        body = _element_text(section)
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


# ---------------------------------------------------------------------------------------------------------
# PMC Open Access JATS

_JATS_DROP = {"ref-list", "table-wrap", "table", "fig", "fig-group", "disp-formula", "inline-formula",
              "supplementary-material", "graphic", "media", "table-wrap-foot", "ack", "fn-group", "app-group"}  # fmt: skip


def read_pmc_jats(path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
    """JATS articles: a single `.nxml`/`.xml(.gz)` file, or every article inside a `.tar.gz` bundle."""
    if path.endswith((".tar.gz", ".tgz", ".tar")):
        try:
            with tarfile.open(path, "r:*") as bundle:
                for member in bundle:
                    if member.isfile() and member.name.endswith((".nxml", ".xml")):
                        data = bundle.extractfile(member)
                        if data is not None:
                            yield from _jats_document(data.read(), report, member.name)
                # tarfile stops quietly at a garbled header, and gzip checks the CRC only at the end of
                # the stream: read to the end so that a damaged bundle is noticed (then dropped whole)
                while bundle.fileobj is not None and bundle.fileobj.read(READ_CHUNK_BYTES):
                    pass
        except (EOFError, tarfile.TruncatedHeaderError) as exc:
            report.skip("truncated archive (rest skipped)", detail=str(exc) or type(exc).__name__)
        except (tarfile.TarError, zlib.error, OSError) as exc:  # CRC, deflate or tar header check failed
            report.damaged = str(exc) or type(exc).__name__
        return
    handle = _open_binary(path, report)
    if handle is None:
        return
    with handle:
        data = b"".join(_read_chunks(handle, report))
    yield from _jats_document(data, report, None)


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
    title = _element_text(root.find(".//article-meta/title-group/article-title"))
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


# ---------------------------------------------------------------------------------------------------------
# PubTator, JSON lines, wikitext, plain text


def read_pubtator(path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
    """PubTator documents: title and abstract lines; annotation lines are ignored."""
    current: dict[str, str] = {}
    start_line = 0

    def flush() -> Iterator[Document]:
        if current:
            pmid = current.get("id", "")
            abstract = current.get("a", "").strip()
            title = current.get("t", "").strip()
            if not abstract:
                report.skipped["no abstract"] += 1
            else:
                yield Document(id=pmid, text=f"{title}\n{abstract}" if title else abstract)
        current.clear()

    for lineno, raw in _lines(path, report):
        text = _decode(raw, report, f"line {lineno}")
        if text is None:
            continue
        text = text.rstrip("\r")
        if not text.strip():
            yield from flush()
            continue
        parts = text.split("|", 2)
        if len(parts) == 3 and parts[1] in {"t", "a"} and parts[0].isdigit():
            if current.get("id") not in (None, parts[0]):
                yield from flush()
            if not current:
                start_line = lineno
            current["id"] = parts[0]
            current[parts[1]] = parts[2]
        elif "\t" in text:
            continue  # annotation line
        else:
            report.skip("unrecognised PubTator line", f"line {lineno}")
    del start_line
    yield from flush()


def read_jsonl(path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
    """JSON lines with `text_field`; the id is `id_field`, else `id`, else `url`, else `file:line`."""
    stem = Path(path).name
    for lineno, raw in _lines(path, report):
        if not raw.strip():
            continue
        where = f"line {lineno}"
        text = _decode(raw, report, where)
        if text is None:
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            report.skip("invalid JSON", where, exc.msg)
            continue
        if not isinstance(record, dict):
            report.skip("JSON line is not an object", where)
            continue
        value = record.get(source.text_field)
        if not isinstance(value, str):
            report.skip(f"no string field '{source.text_field}'", where)
            continue
        doc_id = None
        for key in [source.id_field] if source.id_field else ["id", "url"]:
            if record.get(key) not in (None, ""):
                doc_id = str(record[key])
                break
        yield Document(id=doc_id or f"{stem}:{lineno}", text=value)


_WIKI_TITLE = re.compile(r"^ = ([^=].*?) = $")
_SENTENCE_END = (".", "?", "!", '"', "\u201d", ")", ":", ";", "=")


def _is_formula_line(previous: str, following: str) -> bool:
    """A ` = ... = ` line inside a sentence (wikitext-2 breaks lines around the `=` of a dropped formula:
    "cut-off frequency of ωc / = 1 rad / s and a nominal impedance k = / 1 Ω . This ..."), not a title.

    A title follows a finished paragraph (or a blank line) and is followed by a sentence start (or a blank
    line); a formula fragment continues an unfinished sentence into a line that starts lower-case or with a
    digit. Both must hold to call it a fragment: a short list line before a title may lack a full stop.
    """
    before, after = previous.strip(), following.strip()
    if not before or not after or before.endswith(_SENTENCE_END):
        return False
    return after[0].isdigit() or after[0].islower()


def read_wikitext(path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
    """Raw wikitext: a line ` = Title = ` starts an article (` = = Section = = ` lines stay in the text).

    A title candidate is decided one line later (see `_is_formula_line`), so formula fragments that look like
    titles stay in their article.
    """
    title: str | None = None
    lines: list[str] = []
    stem = Path(path).name
    candidate: str | None = None  # a ` = X = ` line waiting for the next line to decide

    def flush() -> Iterator[Document]:
        body = "\n".join(line.strip() for line in lines if line.strip())
        if title is not None and body:
            yield Document(id=f"{stem}:{title}", text=f"{title}\n{body}")
        elif body:
            yield Document(id=f"{stem}:preamble", text=body)

    for lineno, raw in _lines(path, report):
        text = _decode(raw, report, f"line {lineno}")
        if text is None:
            continue
        text = text.rstrip("\r\n")
        if candidate is not None:
            if _is_formula_line(lines[-1] if lines else "", text):
                lines.append(candidate)
            else:
                yield from flush()
                title, lines = _WIKI_TITLE.match(candidate).group(1).strip(), []  # type: ignore[union-attr]
            candidate = None
        if _WIKI_TITLE.match(text):
            candidate = text
        else:
            lines.append(text)
    if candidate is not None:
        yield from flush()
        title, lines = _WIKI_TITLE.match(candidate).group(1).strip(), []  # type: ignore[union-attr]
    yield from flush()


def read_text_file(path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
    """A whole plain-text file as one document (id: the file name)."""
    handle = _open_binary(path, report)
    if handle is None:
        return
    with handle:
        data = b"".join(_read_chunks(handle, report))
    text = _decode(data, report, None)
    if text is not None and text.strip():
        yield Document(id=Path(path).name, text=text)


def read_hf(path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
    """A `datasets` hub name (streamed) or local dataset directory; offline, a clear DataError."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets ships with the test extras
        raise DataError(
            f"source type 'hf' needs the `datasets` package: pip install datasets ({exc})"
        ) from None
    try:
        if Path(path).is_dir():
            dataset: Any = datasets.load_from_disk(path)
            if isinstance(dataset, datasets.DatasetDict):
                dataset = dataset[source.hf_split]
        else:
            dataset = datasets.load_dataset(path, source.hf_config, split=source.hf_split, streaming=True)
    except Exception as exc:  # noqa: BLE001 - the hub raises many types; the user needs one line
        raise DataError(f"hf dataset '{path}': cannot load ({type(exc).__name__}: {exc})") from None
    for index, record in enumerate(dataset):
        value = record.get(source.text_field)
        if not isinstance(value, str):
            report.skip(f"no string field '{source.text_field}'", f"record {index}")
            continue
        key = source.id_field or "id"
        yield Document(id=str(record.get(key) or f"{path}:{index}"), text=value)


def gzip_damage(path: str) -> str | None:
    """Why a gzip file fails its deflate/CRC check (None: not gzip, intact, or merely truncated).

    One decompression pass without parsing, for readers that hand documents on as they come and so cannot
    build a file's output aside until its end-of-stream check, as the corpus build does.
    """
    with open(path, "rb") as handle:
        if handle.peek(2)[:2] != b"\x1f\x8b":
            return None
        stream = _GzipStream(handle)
        for _ in stream.chunks(READ_CHUNK_BYTES):
            pass
        return stream.damaged


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
    source = SourceConfig(type=source_type, path=path, **fields)  # type: ignore[arg-type]
    report = FileReport(path)
    yield from read_verified_file(path, source, report)


__all__ = [
    "Document",
    "FileReport",
    "iter_text_documents",
    "read_source_file",
    "read_verified_file",
    "resolve_paths",
]
