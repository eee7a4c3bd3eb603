"""Recognise an input file's format from its first bytes (`biomamba data decontaminate` without --type).

Looking at content, not the name: a PubTator file is a `.txt`, MEDLINE files are `.xml.gz`, C4 shards are
`.json.gz` holding JSON lines. A format that cannot be recognised is an error naming the file, never a guess
that then reads nothing and reports the file as clean.
"""

from __future__ import annotations

import re
import tarfile
import zlib
from pathlib import Path

from biomamba.errors import DataError

SNIFF_BYTES = 64 * 1024
_PUBTATOR_LINE = re.compile(r"^\d+\|[ta]\|")
_WIKI_TITLE_LINE = re.compile(r"^ = [^=].* = $")
_XML_TYPES = ((b"<PubmedArticleSet", "pubmed_xml"), (b"<MedlineCitationSet", "pubmed_xml"),
              (b"<PubmedArticle", "pubmed_xml"), (b"<MedlineCitation", "pubmed_xml"), (b"<article", "pmc_jats"))  # fmt: skip


def _head(path: Path) -> bytes:
    """The first bytes of the (decompressed, when gzip) content."""
    with open(path, "rb") as handle:
        data = handle.read(SNIFF_BYTES)
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return zlib.decompressobj(wbits=31).decompress(data, SNIFF_BYTES)
    except zlib.error as exc:
        raise DataError(f"{path}: damaged compressed file ({exc})") from None


def detect_source_type(path: str | Path) -> str:
    """pubmed_xml | pmc_jats | pubtator | jsonl | wikitext | text, from the file's content."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no such file")
    if file.name.endswith((".tar.gz", ".tgz", ".tar")) and tarfile.is_tarfile(file):
        return "pmc_jats"
    head = _head(file)
    if b"<" in head[:200]:
        for marker, source_type in _XML_TYPES:
            if marker in head:
                return source_type
    first = next((line for line in head.decode("utf-8", "replace").splitlines() if line.strip()), "")
    if _PUBTATOR_LINE.match(first):
        return "pubtator"
    if first.lstrip().startswith("{"):
        return "jsonl"
    if _WIKI_TITLE_LINE.match(first.rstrip("\r")):
        return "wikitext"
    if first.strip() and not first.lstrip().startswith("<"):
        return "text"
    raise DataError(f"{file}: cannot tell its format from the content: pass --type")
