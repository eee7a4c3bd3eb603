"""n-gram decontamination against the evaluation sets, read by biomamba.benchmarks (every format it knows).

Every text a model could be asked about or given as context is indexed: questions, answer options, contexts
(PubMedQA's contexts ARE PubMed abstracts, and its long answers are their conclusions, so a PubMed corpus
contains them unless removed), explanations and BioASQ snippets; for the general benchmarks the eval stage
knows, BoolQ passages and questions, ARC/OpenBookQA questions with their choices, HellaSwag contexts with each
ending, PIQA goals with each solution, WinoGrande sentences with each option filled in and LAMBADA passages. A training document that shares at least one
n-gram (13 words by default, as in GPT-3's decontamination) with a benchmark is dropped or flagged, and the
report counts documents per benchmark.

Words are lower-cased `\\w+` tokens, hashed with a stable 64-bit hash (never Python's salted `hash`), and an
n-gram's hash is a polynomial over its word hashes computed with numpy, so checking a document costs a few
vector operations whatever the index size (sorted arrays + searchsorted, no per-n-gram Python objects).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from biomamba.benchmarks import expand_paths, read_benchmark
from biomamba.benchmarks.registry import FAMILIES
from biomamba.data.clean import words_for_matching
from biomamba.data.config import BenchmarkConfig, DecontamConfig
from biomamba.errors import DataError

NO_BENCHMARKS_WARNING = (
    "decontamination is enabled but data.decontam.benchmarks is empty: training documents are NOT checked "
    "against any evaluation set (list the benchmark files, or set data.decontam.enabled: false to say so)"
)

_MULTIPLIER = np.uint64(1_000_003)
_WORD_CACHE_WORDS = 2_000_000  # words repeat a lot, and blake2b per word is the cost of an n-gram pass


@functools.lru_cache(maxsize=_WORD_CACHE_WORDS)
def _word_hash(word: str) -> int:
    """A word's stable 64-bit hash (never Python's salted `hash`)."""
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


def ngram_hashes(text: str, n: int) -> np.ndarray:
    """Hashes of every word n-gram of `text` (empty when it has fewer than n words)."""
    words = words_for_matching(text)
    if len(words) < n:
        return np.zeros(0, dtype=np.uint64)
    word_hashes = np.fromiter(map(_word_hash, words), dtype=np.uint64, count=len(words))
    count = len(words) - n + 1
    result = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            result = result * _MULTIPLIER + word_hashes[k : k + count]
    return result


# ---------------------------------------------------------------------------------------------------------
# Benchmark readers (original formats, see ../shared/data/README.md)


def check_benchmark_paths(config: DecontamConfig) -> None:
    """Fail fast, before any corpus work, when a listed benchmark file, folder or glob matches nothing."""
    for number, benchmark in enumerate(config.benchmarks):
        key = f"data.decontam.benchmarks.{number}.path"
        try:
            expand_paths(benchmark.path)
        except DataError as exc:
            raise DataError(
                f"{key}: {exc} (benchmark '{benchmark.name}', format {benchmark.format}); "
                "download it or remove the entry"
            ) from None


def benchmark_texts(benchmark: BenchmarkConfig) -> Iterator[str]:
    """Every indexable text of one benchmark file, folder or glob (biomamba.benchmarks reads them all).

    The texts are `Record.texts()`: the same parsed question, options and context that evaluation scores
    (HellaSwag's `activity_label: ctx` included), so what is removed is what would be measured.
    """
    what = f"data.decontam.benchmarks[{benchmark.name}] (format {benchmark.format})"
    for record in read_benchmark(benchmark.path, accept=FAMILIES[benchmark.format], what=what).records:
        yield from record.texts()


# ---------------------------------------------------------------------------------------------------------
# Index


@dataclass
class NgramIndex:
    """Sorted n-gram hash arrays per benchmark, plus what was indexed (for the report)."""

    n: int
    hashes: dict[str, np.ndarray] = field(default_factory=dict)
    stats: dict[str, dict[str, int | str]] = field(default_factory=dict)

    @classmethod
    def build(cls, config: DecontamConfig) -> NgramIndex:
        check_benchmark_paths(config)
        index = cls(n=config.ngram)
        for benchmark in config.benchmarks:
            index.add(
                benchmark.name, benchmark_texts(benchmark), source=f"{benchmark.format}:{benchmark.path}"
            )
        return index

    def add(self, name: str, texts: Iterable[str], source: str = "") -> None:
        chunks = [ngram_hashes(text, self.n) for text in texts]
        items, too_short = len(chunks), sum(grams.size == 0 for grams in chunks)
        if name in self.hashes:
            chunks.append(self.hashes[name])
        merged = np.unique(np.concatenate(chunks)) if chunks else np.zeros(0, dtype=np.uint64)
        self.hashes[name] = merged
        self.stats[name] = {"source": source, "texts": items, "too_short_to_index": too_short,
                            "ngrams": int(merged.size)}  # fmt: skip

    def __bool__(self) -> bool:
        return any(h.size for h in self.hashes.values())

    def matches(self, text: str) -> list[str]:
        """Names of the benchmarks sharing at least one n-gram with `text`."""
        if not self:
            return []
        grams = ngram_hashes(text, self.n)
        if grams.size == 0:
            return []
        hits = []
        for name, table in self.hashes.items():
            if table.size:
                positions = np.searchsorted(table, grams)
                positions[positions == table.size] = 0
                if bool((table[positions] == grams).any()):
                    hits.append(name)
        return hits
