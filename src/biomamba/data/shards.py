"""Packed token shards: the on-disk contract between the corpus stage and the trainer.

Layout of a corpus directory (see docs/formats.md):

    CORPUS/manifest.json                   what was built, from what, with which tokenizer
    CORPUS/<split>/shard-00000.bin         token ids, little-endian uint16 or uint32, documents back to back
    CORPUS/<split>/shard-00000.idx         little-endian int64: the offset of each document start in the .bin

`<split>` is `train` (the mixture) or `heldout/<domain>`. Every document already ends with the tokenizer's
EOS id. A shard is written to a temporary file and renamed, so a reader never sees a partial shard.
The reader memory-maps shards, so a corpus of any size costs almost no RAM.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biomamba.benchmarks.io import load_json
from biomamba.errors import DataError
from biomamba.utils.atomic import current_umask

FORMAT_VERSION = "biomamba-shards/1"
MANIFEST_NAME = "manifest.json"


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (vocab <= 65536), else uint32: halves disk and page-cache for most vocabularies."""
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


@dataclass(frozen=True)
class ShardRecord:
    """One finished shard as listed in the manifest."""

    path: str  # relative to the corpus directory
    tokens: int
    documents: int
    sha256: str

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "tokens": self.tokens, "documents": self.documents, "sha256": self.sha256}


def write_shard(
    corpus_dir: Path, relative_path: str, documents: Sequence[Sequence[int]], dtype: np.dtype
) -> ShardRecord:
    """Write one shard (.bin + .idx) atomically and return its manifest record."""
    lengths = np.fromiter((len(doc) for doc in documents), dtype=np.int64, count=len(documents))
    tokens = [np.asarray(doc, dtype=np.int64) for doc in documents]
    with ShardWriter(corpus_dir, relative_path, dtype) as writer:
        writer.add(np.concatenate(tokens) if tokens else np.zeros(0, np.int64), lengths)
        return writer.close()


class ShardWriter:
    """Stream documents into one shard without holding it in memory (what `write_shard` writes with too).

    Tokens and offsets go to temporary siblings; `close()` fsyncs and renames the `.idx` then the `.bin`
    (the `.bin` is what a manifest lists, so it appears last). Leaving the `with` block through an exception
    removes the temporary files: an interrupted build never leaves a partial shard under the final name.
    """

    def __init__(self, corpus_dir: str | Path, relative_path: str, dtype: np.dtype) -> None:
        self.relative_path = relative_path
        self.dtype = np.dtype(dtype)
        self.bin_path = Path(corpus_dir) / relative_path
        self.bin_path.parent.mkdir(parents=True, exist_ok=True)
        self._limit = int(np.iinfo(self.dtype).max)
        self._digest = hashlib.sha256()
        self.tokens = 0
        self.documents = 0
        self._tmp: list[Path] = []
        handles = []
        for suffix in (".bin", ".idx"):
            target = self.bin_path.with_suffix(suffix)
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.fchmod(fd, 0o666 & ~current_umask())  # what open() gives, as `atomic_write` does: not 0600
            self._tmp.append(Path(name))
            handles.append(open(fd, "wb"))  # noqa: SIM115 - closed in close()/abort()
        self._bin, self._idx = handles

    def add(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        """Append documents given as one flat token array and the length of each document."""
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.size == 0:
            return
        if (lengths <= 0).any():
            raise ValueError("empty documents cannot be written to a shard")
        if int(lengths.sum()) != tokens.size:
            raise ValueError(f"lengths sum to {int(lengths.sum())} but {tokens.size} tokens were given")
        if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) > self._limit):
            raise ValueError(f"token id out of range for {self.dtype}: max {int(tokens.max())}")
        starts = (self.tokens + np.cumsum(lengths) - lengths).astype("<i8")  # each document's first token
        payload = np.ascontiguousarray(tokens, dtype=self.dtype).tobytes()
        self._bin.write(payload)
        self._digest.update(payload)
        self._idx.write(starts.tobytes())
        self.tokens += int(tokens.size)
        self.documents += int(lengths.size)

    def close(self) -> ShardRecord:
        """Make the shard visible under its final name and return its manifest record."""
        for handle in (self._bin, self._idx):
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        os.replace(self._tmp[1], self.bin_path.with_suffix(".idx"))
        os.replace(self._tmp[0], self.bin_path)
        return ShardRecord(self.relative_path, self.tokens, self.documents, self._digest.hexdigest())

    def abort(self) -> None:
        for handle in (self._bin, self._idx):
            handle.close()
        for tmp in self._tmp:
            tmp.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()


class TokenShards:
    """Read-only view of one split as a single token stream with document boundaries.

    `window(start, length)` returns the tokens at [start, start + length) of the concatenated split and,
    for each position, the index of the document it belongs to (counted from the window's first document),
    which is what a Mamba2 `seq_idx` or a block-diagonal attention mask needs.
    """

    def __init__(self, corpus_dir: str | Path, split: str = "train") -> None:
        self.corpus_dir = Path(corpus_dir)
        manifest = read_manifest(self.corpus_dir)
        splits = manifest.get("splits", {})
        if split not in splits:
            raise DataError(
                f"{self.corpus_dir / MANIFEST_NAME}: no split '{split}' (have: {', '.join(sorted(splits))})"
            )
        self.split = split
        self.dtype = np.dtype(manifest["dtype"])
        self.vocab_size = int(manifest.get("vocab_size", 0))
        self.eos_token_id = manifest.get("eos_token_id")
        self._tokens: list[np.ndarray] = []
        doc_starts: list[np.ndarray] = []
        offset = 0
        for record in splits[split]["shards"]:
            bin_path = self.corpus_dir / record["path"]
            if not bin_path.is_file():
                raise DataError(f"{bin_path}: shard listed in the manifest is missing")
            tokens, starts = map_shard(bin_path, self.dtype)
            if tokens.size != record["tokens"]:
                raise DataError(f"{bin_path}: {tokens.size} tokens on disk, manifest says {record['tokens']}")
            self._tokens.append(tokens)
            doc_starts.append(starts + offset)
            offset += tokens.size
        self._shard_offsets = np.cumsum([0] + [t.size for t in self._tokens])
        self.doc_starts = np.concatenate(doc_starts) if doc_starts else np.zeros(0, dtype=np.int64)
        self.num_tokens = int(offset)

    @property
    def num_documents(self) -> int:
        return int(self.doc_starts.size)

    def tokens(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start+length) of the split as int64, crossing shard boundaries as needed."""
        if start < 0 or start + length > self.num_tokens:
            raise IndexError(f"window [{start}, {start + length}) outside split of {self.num_tokens} tokens")
        out = np.empty(length, dtype=np.int64)
        filled = 0
        shard = int(np.searchsorted(self._shard_offsets, start, side="right") - 1)
        while filled < length:
            local = start + filled - int(self._shard_offsets[shard])
            take = min(length - filled, self._tokens[shard].size - local)
            out[filled : filled + take] = self._tokens[shard][local : local + take]
            filled += take
            shard += 1
        return out

    def document_ids(self, start: int, length: int) -> np.ndarray:
        """Per-position document index within the window, starting at 0 for the first position's document."""
        positions = np.arange(start, start + length)
        doc = np.searchsorted(self.doc_starts, positions, side="right") - 1
        return (doc - doc[0]).astype(np.int64)

    def window(self, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        return self.tokens(start, length), self.document_ids(start, length)

    def documents(self) -> Iterable[np.ndarray]:
        """Iterate over whole documents (used by held-out perplexity and tests)."""
        ends = np.append(self.doc_starts, self.num_tokens)[1:]  # none for an empty split
        for begin, end in zip(self.doc_starts, ends, strict=True):
            yield self.tokens(int(begin), int(end - begin))


def map_shard(bin_path: Path, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """A shard's tokens, memory-mapped (numpy cannot map an empty file), and its document start offsets."""
    tokens = np.memmap(bin_path, dtype=dtype, mode="r") if bin_path.stat().st_size else np.zeros(0, dtype)
    return tokens, np.fromfile(bin_path.with_suffix(".idx"), dtype="<i8")


def read_manifest(corpus_dir: str | Path) -> dict:
    """Load and sanity-check a corpus manifest."""
    path = Path(corpus_dir) / MANIFEST_NAME
    if not path.is_file():
        raise DataError(f"{path}: corpus manifest not found (build the corpus with `biomamba data build`)")
    manifest, _ = load_json(path)  # a DataError naming path:line for bad JSON or bytes that are not UTF-8
    if manifest.get("format") != FORMAT_VERSION:
        raise DataError(f"{path}: unsupported format {manifest.get('format')!r}, expected {FORMAT_VERSION!r}")
    return manifest
