"""What a reader declares: the registry's contract (datatrove's readers, lm-eval's task registry).

docs/ARCHITECTURE.md, "Adding a data source", has a worked example. A reader module imports the contract from
here: `Reader`, `register`, `Probe` and the `SourceConfig` its `read` is given.
"""

from __future__ import annotations

import glob
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar

from biomamba.data.config import SourceConfig
from biomamba.data.readers.streams import GZIP_MAGIC, Document, FileReport
from biomamba.errors import DataError

SNIFF_BYTES = 64 * 1024


@dataclass
class Probe:
    """What detection looks at: the path, the first bytes of the (decompressed) content, its first line.

    Looking at content, not the name: a PubTator file is a `.txt`, MEDLINE files are `.xml.gz`, C4 shards are
    `.json.gz` holding JSON lines. Read lazily, once, whichever reader asks first.
    """

    path: Path
    damaged: str | None = None  # the gzip head failed to decompress: reported when no reader claims the file

    @cached_property
    def head(self) -> bytes:
        with open(self.path, "rb") as handle:
            data = handle.read(SNIFF_BYTES)
        if data[:2] != GZIP_MAGIC:
            return data
        try:
            return zlib.decompressobj(wbits=31).decompress(data, SNIFF_BYTES)
        except zlib.error as exc:
            self.damaged = str(exc)
            return b""

    @cached_property
    def first_line(self) -> str:
        """The first non-blank line, decoded leniently, without its line ending."""
        lines = self.head.decode("utf-8", "replace").splitlines()
        return next((line for line in lines if line.strip()), "")

    def looks_like_xml(self) -> bool:
        return b"<" in self.head[:200]


class Reader:
    """One source type. Subclass, set `name`, implement `read` (and `detect` where the content tells), and
    decorate with `@register`.

    Hooks, each with the default that fits most formats:
    - `identity`: the namespace of document ids shared with other sources (`"pmid"`, `"pmc"`): the corpus
      build keeps one version per (namespace, id) across every source, the newest by `Document.revised`, and
      applies `FileReport.deleted_ids` (biomamba/data/records.py). None: ids are this file's own.
    - `fallback`: detection asks this reader only when no other claims the file (plain text).
    - `resolve`: which inputs a source names (default: files, folders, globs; the hub reader: names).
    """

    name: ClassVar[str] = ""
    identity: ClassVar[str | None] = None
    fallback: ClassVar[bool] = False

    def read(self, path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
        """Yield the documents of one input; count every unusable record in `report`, naming where it is."""
        raise NotImplementedError

    def detect(self, probe: Probe) -> bool:
        """Whether the content is this format (claims of different readers must exclude each other)."""
        return False

    def resolve(self, source: SourceConfig, domain: str) -> list[str]:
        """Expand the source's paths (files, directories, globs) into a sorted, de-duplicated file list.

        A path that matches nothing is a user error (DataError naming the domain and the path): a typo must not
        silently produce a corpus without that source.
        """
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


READERS: dict[str, Reader] = {}


def register(cls: type[Reader]) -> type[Reader]:
    """Class decorator: add one instance of the reader to `READERS` under its `name`."""
    if not cls.name or cls.name in READERS:
        raise ValueError(f"reader {cls.__name__}: name {cls.name!r} is empty or already registered")
    READERS[cls.name] = cls()
    return cls


def get_reader(name: str) -> Reader:
    if name not in READERS:
        raise DataError(f"unknown source type '{name}' (known: {', '.join(READERS)})")
    return READERS[name]
