"""n-gram decontamination against the evaluation sets, read in their ORIGINAL release formats.

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

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biomamba.data.clean import words_for_matching
from biomamba.data.config import BenchmarkConfig, DecontamConfig
from biomamba.errors import DataError
from biomamba.eval import io as tio  # stdlib-only readers (JSON lines or a JSON array, .gz), shared with eval

NO_BENCHMARKS_WARNING = (
    "decontamination is enabled but data.decontam.benchmarks is empty: training documents are NOT checked "
    "against any evaluation set (list the benchmark files, or set data.decontam.enabled: false to say so)"
)

_MULTIPLIER = np.uint64(1_000_003)
_WORD_CACHE_LIMIT = 2_000_000


class _WordHasher:
    """Stable 64-bit word hashes with a bounded cache (words repeat a lot; blake2b per word is the cost)."""

    def __init__(self) -> None:
        self.cache: dict[str, int] = {}

    def __call__(self, words: list[str]) -> np.ndarray:
        cache = self.cache
        out = np.empty(len(words), dtype=np.uint64)
        for i, word in enumerate(words):
            value = cache.get(word)
            if value is None:
                value = int.from_bytes(
                    hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little"
                )
                if len(cache) < _WORD_CACHE_LIMIT:
                    cache[word] = value
            out[i] = value
        return out


_HASH_WORDS = _WordHasher()


def ngram_hashes(text: str, n: int) -> np.ndarray:
    """Hashes of every word n-gram of `text` (empty when it has fewer than n words)."""
    words = words_for_matching(text)
    if len(words) < n:
        return np.zeros(0, dtype=np.uint64)
    word_hashes = _HASH_WORDS(words)
    count = len(words) - n + 1
    result = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            result = result * _MULTIPLIER + word_hashes[k : k + count]
    return result


# ---------------------------------------------------------------------------------------------------------
# Benchmark readers (original formats, see ../shared/data/README.md)


def check_benchmark_paths(config: DecontamConfig) -> None:
    """Fail fast, before any corpus work, when a listed benchmark is missing or of the wrong kind."""
    for number, benchmark in enumerate(config.benchmarks):
        key = f"data.decontam.benchmarks.{number}.path"
        path = Path(benchmark.path).expanduser()
        if not path.exists():
            raise DataError(
                f"{key}: {benchmark.path}: not found (benchmark '{benchmark.name}', format {benchmark.format}); "
                "download it or remove the entry"
            )
        if path.is_dir() and benchmark.format != "mmlu":
            raise DataError(f"{key}: {benchmark.path}: is a folder; format {benchmark.format} reads one file")
        if path.is_dir() and not any(path.glob("*.csv")):
            raise DataError(f"{key}: {benchmark.path}: folder without any .csv file (MMLU)")


def benchmark_texts(benchmark: BenchmarkConfig) -> Iterator[str]:
    """Every indexable text of one benchmark file (or MMLU folder); bad files are a DataError naming them."""
    path = Path(benchmark.path).expanduser()
    if not path.exists():
        raise DataError(f"data.decontam.benchmarks[{benchmark.name}]: {path}: not found")
    readers = {
        "pubmedqa": _pubmedqa_texts,
        "medqa": _medqa_texts,
        "medmcqa": _medmcqa_texts,
        "mmlu": _mmlu_texts,
        "bioasq": _bioasq_texts,
        "boolq": _boolq_texts,
        "arc": _arc_texts,
        "openbookqa": _arc_texts,
        "hellaswag": _hellaswag_texts,
        "piqa": _piqa_texts,
        "winogrande": _winogrande_texts,
        "lambada": _lambada_texts,
    }
    try:
        yield from readers[benchmark.format](path)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError, csv.Error) as exc:
        raise DataError(
            f"{path}: not a valid {benchmark.format} file ({type(exc).__name__}: {exc})"
        ) from None


def _pubmedqa_texts(path: Path) -> Iterator[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    for record in data.values():
        yield record["QUESTION"]
        yield from record.get("CONTEXTS", [])
        if record.get("LONG_ANSWER"):
            yield record["LONG_ANSWER"]


def _json_lines(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: line {lineno}: invalid JSON ({exc.msg})") from None


def _medqa_texts(path: Path) -> Iterator[str]:
    for record in _json_lines(path):
        options = record.get("options") or {}
        yield record["question"]
        yield record["question"] + " " + " ".join(str(v) for v in options.values())


def _medmcqa_texts(path: Path) -> Iterator[str]:
    for record in _json_lines(path):
        options = " ".join(str(record.get(k, "")) for k in ("opa", "opb", "opc", "opd"))
        yield record["question"]
        yield f"{record['question']} {options}"
        if record.get("exp"):
            yield record["exp"]


def _mmlu_texts(path: Path) -> Iterator[str]:
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    for file in files:
        with file.open(encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle):
                if len(row) >= 6:
                    yield row[0]
                    yield " ".join(row[:5])


def _bioasq_texts(path: Path) -> Iterator[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    for question in data["questions"]:
        yield question["body"]
        ideal = question.get("ideal_answer") or []
        yield from [ideal] if isinstance(ideal, str) else ideal
        for snippet in question.get("snippets", []):
            yield snippet["text"]


def _boolq_texts(path: Path) -> Iterator[str]:
    for where, record in tio.iter_json_records(path):
        question = tio.field(record, "question", str, where)
        passage = tio.field(record, "passage", str, where)
        yield passage
        yield question
        yield f"{passage} {question}"


def _arc_texts(path: Path) -> Iterator[str]:
    """ARC and OpenBookQA: the original `{question: {stem, choices: [{label, text}]}}` or the hub layout."""
    for where, record in tio.iter_json_records(path):
        question = record.get("question") if isinstance(record, dict) else None
        if isinstance(question, dict):
            stem = tio.field(question, "stem", str, where)
            choices = [
                str(tio.field(c, "text", str, where)) for c in tio.field(question, "choices", list, where)
            ]
        else:
            stem = tio.field(record, "question_stem" if "question_stem" in record else "question", str, where)
            choices = [str(t) for t in tio.field(record, "choices", dict, where).get("text", [])]
        yield stem
        yield " ".join([stem, *choices])


def _hellaswag_clean(text: str) -> str:
    """The cleanup eval applies to HellaSwag text (WikiHow `[title]`/`[step]` markers are not prose)."""
    return re.sub(r"\[.*?\]", "", text.strip().replace(" [title]", ". ")).replace("  ", " ")


def _hellaswag_texts(path: Path) -> Iterator[str]:
    for where, record in tio.iter_json_records(path):
        endings = tio.field(record, "endings", list, where)
        if "ctx_a" in record:
            ctx = f"{tio.field(record, 'ctx_a', str, where)} {tio.field(record, 'ctx_b', str, where)}"
        else:
            ctx = tio.field(record, "ctx", str, where)
        ctx = _hellaswag_clean(ctx)
        yield ctx
        for ending in endings:
            yield f"{ctx} {_hellaswag_clean(str(ending))}"


def _piqa_texts(path: Path) -> Iterator[str]:
    for where, record in tio.iter_json_records(path):
        goal = tio.field(record, "goal", str, where)
        yield goal
        for key in ("sol1", "sol2"):
            yield f"{goal} {tio.field(record, key, str, where)}"


def _winogrande_texts(path: Path) -> Iterator[str]:
    for where, record in tio.iter_json_records(path):
        sentence = tio.field(record, "sentence", str, where)
        for key in ("option1", "option2"):
            yield sentence.replace("_", tio.field(record, key, str, where), 1)


def _lambada_texts(path: Path) -> Iterator[str]:
    for where, record in tio.iter_json_records(path):
        yield tio.field(record, "text", str, where)


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
        chunks: list[np.ndarray] = []
        items = too_short = 0
        for text in texts:
            items += 1
            grams = ngram_hashes(text, self.n)
            if grams.size == 0:
                too_short += 1
            chunks.append(grams)
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

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Picklable, compact form for worker processes."""
        return dict(self.hashes)

    @classmethod
    def from_arrays(cls, n: int, arrays: dict[str, np.ndarray]) -> NgramIndex:
        return cls(n=n, hashes=dict(arrays))
