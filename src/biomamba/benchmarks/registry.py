"""The one registry of benchmark formats: detect a file's format, read its records, rewrite its free text.

Every stage that touches a benchmark file goes through here: eval (prompts), finetune (training examples),
data decontamination (n-gram index) and translation (same format, other language). A format is chosen by
content detection, or named (`format=`); either way the choice is returned so callers can say it.
"""

from __future__ import annotations

import copy
import csv
import glob
import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from biomamba.benchmarks import io as bio
from biomamba.benchmarks.biomedical import FORMATS as BIOMEDICAL
from biomamba.benchmarks.biomedical import is_bioasq_bigbio_qa
from biomamba.benchmarks.general import FORMATS as GENERAL
from biomamba.benchmarks.general import iter_piqa
from biomamba.benchmarks.record import Record
from biomamba.benchmarks.spec import Format
from biomamba.errors import DataError
from biomamba.utils.atomic import write_text
from biomamba.utils.digest import file_sha256

log = logging.getLogger(__name__)

FORMATS: dict[str, Format] = {f.name: f for f in (*BIOMEDICAL, *GENERAL)}
# a benchmark (as recipes and tasks name it) -> the formats its files come in
FAMILIES: dict[str, tuple[str, ...]] = {
    "pubmedqa": ("pubmedqa", "pubmedqa-bigbio", "pubmedqa-bigbio-qa", "pubmedqa-qiaojin"),
    "medqa": ("medqa", "medqa-hf"),
    "medmcqa": ("medmcqa", "medmcqa-hf"),
    "mmlu": ("mmlu", "mmlu-hf"),
    "bioasq": ("bioasq",),
    "arc": ("arc", "arc-hf", "icl-mc"),
    "openbookqa": ("arc", "arc-hf", "icl-mc"),
    "hellaswag": ("hellaswag", "icl-mc"),
    "piqa": ("piqa", "icl-mc"),
    "winogrande": ("winogrande", "icl-schema"),
    "boolq": ("boolq", "icl-mc"),
    "copa": ("copa", "icl-mc"),
    "lambada": ("lambada", "icl-lm"),
    "truthfulqa": ("truthfulqa",),
}
DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
SAMPLE = 50  # records looked at by content detection
Report = Callable[[str, str], None]


def get_format(name: str) -> Format:
    if name not in FORMATS:
        raise DataError(f"unknown benchmark format '{name}' (known: {', '.join(sorted(FORMATS))})")
    return FORMATS[name]


# ---------------------------------------------------------------------------------------------- detection


# what a file's layout (`bio.layout_of`) or a format's layout (`Format.layout`) is, in an error message's words
LAYOUT_WORDS = {"json": "one JSON document", "jsonl": "JSON lines", "csv": "CSV", "parquet": "parquet",
                "dict": "one JSON document", "document": "one JSON document",
                "records": "JSON lines / parquet rows", "piqa": "JSON lines / parquet rows"}  # fmt: skip


def _document_format(path: Path, data: Any) -> Format | None:
    """PubMedQA (PMID -> record) or BioASQ ({"questions": [...]}) from a whole-file JSON object."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("questions"), list):
        return FORMATS["bioasq"]
    values = list(islice(data.values(), SAMPLE))
    pubmedqa_keys = ("QUESTION", "CONTEXTS", "final_decision")
    if (
        values
        and all(isinstance(v, dict) for v in values)
        and any(k in v for v in values for k in pubmedqa_keys)
    ):
        return FORMATS["pubmedqa"]
    keys = list(islice(data, SAMPLE))
    if keys and all(str(k).isdigit() for k in keys) and all(v in ("yes", "no", "maybe") for v in values):
        raise DataError(
            f"{path}: is a PubMedQA ground-truth file (PMID -> label), not questions: give the folder that "
            "holds it with test_set.json or ori_pqal.json (task pubmedqa_test)"
        )
    return None


def _sample(path: Path, layout: str) -> list[Any]:
    if layout == "json":
        data, _ = bio.load_json(path)
        return list(data[:SAMPLE]) if isinstance(data, list) else [data]
    return [rec for _, rec in islice(bio.iter_rows(path), SAMPLE)]


def _record_format(records: list[Any], layout: str) -> Format | None:
    first = next((r for r in records if isinstance(r, dict)), None)
    if first is None:
        return None
    candidates = [f for f in FORMATS.values() if f.layout in ("records", "piqa") and f.keys]
    candidates.sort(key=lambda f: -len(f.keys))
    for fmt in candidates:
        if all(k in first for k in fmt.keys) and (fmt.refine is None or fmt.refine(records, layout)):
            return fmt
    return None


def detect_format(path: Path, accept: Iterable[str] | None = None) -> Format:
    """The format of one file, from its content (layout first, then the fields of its first records).

    With `accept` (a task's formats), a file that matches none of the known signatures is read with the
    accepted format sharing most of its fields, so the error names the missing field (`missing 'passage'`).
    """
    layout = bio.layout_of(path)
    if layout == "csv":
        return FORMATS["mmlu"]
    if layout == "json":
        data, _ = bio.load_json(path)
        found = _document_format(path, data)
        if found is not None:
            return found
    records = _sample(path, layout)
    found = _record_format(records, layout)
    if found is FORMATS["pubmedqa-bigbio-qa"] and is_bioasq_bigbio_qa(records):
        raise DataError(
            f"{path}: is BioASQ in bigbio's bigbio_qa schema (one row per snippet, ids <question>_<n>): "
            "read the Task B golden JSON it was made from (format bioasq), whose questions keep all their snippets"
        )
    first = next((r for r in records if isinstance(r, dict)), None)
    if found is None and first is not None and accept is not None:
        found = _closest(first, accept)
    if found is None:
        what = f"records with fields {sorted(first)}" if first else "no JSON-object records"
        words = "a JSON file" if layout == "json" else LAYOUT_WORDS[layout]
        raise DataError(
            f"{path}: {words} with {what}: not a benchmark format biomamba reads "
            "(list them: biomamba eval tasks; or name one with format=)"
        )
    return found


def _closest(record: dict[str, Any], accept: Iterable[str]) -> Format | None:
    shared = [(len(set(FORMATS[n].keys) & set(record)), FORMATS[n]) for n in accept]
    shared = [(n, f) for n, f in shared if n and f.layout in ("records", "piqa")]
    return max(shared, key=lambda pair: pair[0])[1] if shared else None


def check_layout(path: Path, fmt: Format) -> None:
    """A named format whose layout the file does not have: say what the file is and what was expected."""
    layout = bio.layout_of(path)
    if (fmt.layout == "csv") != (layout == "csv"):
        mismatch = True
    elif fmt.layout in ("dict", "document"):
        mismatch = layout != "json"
    else:  # per-record formats take JSON lines, a JSON array or parquet, not a whole-file document
        mismatch = layout == "json" and _document_format(path, bio.load_json(path)[0]) is not None
    if mismatch:
        raise DataError(
            f"{path}: is {LAYOUT_WORDS[layout]}; format {fmt.name} ({fmt.title}) is {LAYOUT_WORDS[fmt.layout]}"
        )


# ---------------------------------------------------------------------------------------------- reading


def _located(path: Path, text: str, keys: Iterable[object]) -> Iterator[str]:
    """ "path:line" of each record's key/id, searched forward (records appear in file order)."""
    pos, line = 0, 1
    for key in keys:
        found = text.find(f'"{key}"', pos)
        if found < 0:
            yield f"{path}:{line}"
            continue
        line += text.count("\n", pos, found)
        pos = found
        yield f"{path}:{line}"


def iter_raw(path: Path, fmt: Format) -> Iterator[tuple[str, Any, str | None]]:
    """(where, raw record, key) for each record of `path` in `fmt`'s layout; key: PMID, PIQA label line."""
    if fmt.layout == "piqa":
        yield from iter_piqa(path)
    elif fmt.layout == "dict":
        data, text = bio.load_json(path)
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a JSON object PMID -> record ({fmt.title})")
        keys = [str(k) for k in data]
        for where, key in zip(_located(path, text, keys), keys, strict=True):
            yield where, data[key], key
    elif fmt.layout == "document":
        data, text = bio.load_json(path)
        items = bio.field(data, "questions", list, str(path))
        ids = [rec.get("id", i) if isinstance(rec, dict) else i for i, rec in enumerate(items)]
        for where, rec in zip(_located(path, text, ids), items, strict=True):
            yield where, rec, None
    else:  # headerless CSV rows, or JSON lines / a JSON array / parquet rows
        for where, rec in bio.iter_csv(path) if fmt.layout == "csv" else bio.iter_rows(path):
            yield where, rec, None


def iter_records(path: Path, fmt: Format, report: Report | None = None) -> Iterator[Record]:
    """Parsed records; a bad one raises `DataError("path:line: reason")`, or goes to `report(where, reason)`."""
    for where, raw, key in iter_raw(path, fmt):
        try:
            yield fmt.parse(raw, where, key)
        except DataError as exc:
            if report is None:
                raise
            message = str(exc)
            report(where, message[len(where) + 2 :] if message.startswith(f"{where}: ") else message)


@dataclass(frozen=True)
class SourceFile:
    """One file a benchmark was read from: what a results file records about its input."""

    path: Path
    format: str
    sha256: str
    records: int
    duplicates: int = 0  # records whose id an earlier file already had (left out)

    def describe(self) -> str:
        """E.g. "golden8b.json 21 (3 duplicates left out)"."""
        left_out = f" ({self.duplicates} duplicates left out)" if self.duplicates else ""
        return f"{self.path.name} {self.records}{left_out}"


@dataclass
class Benchmark:
    """The records of one or more files of one benchmark, de-duplicated by id across files."""

    records: list[Record] = field(default_factory=list)
    files: list[SourceFile] = field(default_factory=list)

    @property
    def format(self) -> str:
        """The detected (or named) format; formats joined by "+" when the files differ."""
        return "+".join(sorted({f.format for f in self.files}))


def expand_paths(spec: str | Path) -> list[Path]:
    """A file, a folder (its data files, sorted) or a glob pattern -> the files to read."""
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if _is_data_file(p))
        if not files:
            raise DataError(f"{path}: is a folder without benchmark files ({', '.join(DATA_SUFFIXES)})")
        return files
    if path.is_file():
        return [path]
    if glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
        if not files:
            raise DataError(f"{text}: no file matches this pattern")
        return files
    raise DataError(f"{path}: not found")


def _is_data_file(path: Path) -> bool:
    return (
        path.is_file()
        and not path.name.startswith(".")
        and bio.base_suffix(path) in DATA_SUFFIXES
        and path.name != "test_ground_truth.json"
        and not path.name.endswith(".cache.jsonl")  # the translator's cache beside its output
    )


def resolve_format(path: Path, format: str | None, accept: Iterable[str] | None, what: str) -> Format:
    """The named format (its layout checked) or the detected one; refused unless `accept` has it."""
    if format is not None:
        fmt = get_format(format)
        check_layout(path, fmt)
    else:
        fmt = detect_format(path, accept)
    accepted = list(accept) if accept is not None else None
    if accepted is not None and fmt.name not in accepted:
        expected = "; ".join(FORMATS[name].describe() for name in accepted)
        raise DataError(f"{path}: is {fmt.describe()}; {what} reads {expected}")
    return fmt


def read_benchmark(
    spec: str | Path | Sequence[str | Path],
    *,
    format: str | None = None,
    accept: Iterable[str] | None = None,
    what: str = "this benchmark",
    report: Report | None = None,
    select: Callable[[Path], list[Path]] | None = None,
) -> Benchmark:
    """Every record of a file, folder or glob (or a list of them); a record id seen in an earlier file is
    left out (counted per file).

    `accept` limits the formats (a task's); `what` names the reader in errors ("task 'medqa_4options'");
    `select` narrows a folder's or glob's files (MMLU: the subject's files).
    """
    specs = [spec] if isinstance(spec, str | Path) else list(spec)
    paths = [p for one in specs for p in expand_paths(one)]
    if select is not None:
        paths = select(paths)
    accepted = list(accept) if accept is not None else None
    benchmark = Benchmark()
    seen: set[str] = set()
    for path in paths:
        fmt = resolve_format(path, format, accepted, what)
        records = list(iter_records(path, fmt, report))
        fresh = [r for r in records if r.id not in seen] if len(paths) > 1 else records
        seen.update(r.id for r in records)
        benchmark.records.extend(fresh)
        benchmark.files.append(
            SourceFile(path, fmt.name, file_sha256(path), len(records), len(records) - len(fresh))
        )
        log.info("%s: %s, %d records", path, fmt.describe(), len(records))
    return benchmark


# ------------------------------------------------------------------------------------- free-text rewrite


def _apply(node: Any, parts: list[str], fn: Callable[[str], str]) -> Any:
    if not parts:
        return fn(node) if isinstance(node, str) else node
    head, rest = parts[0], parts[1:]
    if head == "*":
        return {k: _apply(v, rest, fn) for k, v in node.items()} if isinstance(node, dict) else node
    if head == "{}":
        return {fn(k): v for k, v in node.items()} if isinstance(node, dict) else node
    name, is_list = (head[:-2], True) if head.endswith("[]") else (head, False)
    if not isinstance(node, dict) or name not in node:
        return node
    value = node[name]
    if is_list:
        node[name] = [_apply(v, rest, fn) for v in value] if isinstance(value, list) else value
    else:
        node[name] = _apply(value, rest, fn)
    return node


def map_text(fmt: Format, raw: Any, fn: Callable[[str], str]) -> Any:
    """A copy of one raw record with its free text passed through `fn` (ids, answers and labels kept)."""
    if fmt.layout == "csv":
        return [fn(cell) for cell in raw[:-1]] + list(raw[-1:]) if isinstance(raw, list) else raw
    node = copy.deepcopy(raw)
    for path in fmt.text_paths:
        node = _apply(node, path.split("."), fn)
    return node


def render(fmt: Format, raws: list[tuple[Any, str | None]], document: Any = None) -> str:
    """Text of a file in `fmt`'s layout holding `raws` ((record, key) pairs as `iter_raw` yields them).

    `document` is the BioASQ file the questions came from (its other top-level fields are kept).
    """
    if fmt.layout == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(raw for raw, _ in raws)
        return buffer.getvalue()
    if fmt.layout == "dict":
        return json.dumps({key: raw for raw, key in raws}, ensure_ascii=False, indent=1) + "\n"
    if fmt.layout == "document":
        body = {**(document or {}), "questions": [raw for raw, _ in raws]}
        return json.dumps(body, ensure_ascii=False, indent=1) + "\n"
    return "".join(json.dumps(raw, ensure_ascii=False) + "\n" for raw, _ in raws)


def write_benchmark(
    path: Path, format: str, raws: list[tuple[Any, str | None]], document: Any = None
) -> Path:
    """Write records in a format's own layout, atomically (translation, the demo's synthetic benchmarks)."""
    write_text(path, render(get_format(format), raws, document))
    return path
