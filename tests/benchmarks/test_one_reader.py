"""One reader per format: outside biomamba.benchmarks no module reads a benchmark record's own fields.

The fields below identify one benchmark's records (MedQA's `answer_idx`, MedMCQA's `cop`, PubMedQA's
`CONTEXTS`, BioASQ's `exact_answer`, ...). Reading one of them (`rec["cop"]`, `rec.get("cop")`,
`field(rec, "cop", ...)`) anywhere but in the registry's parsers would be a second reader of that format,
with its own idea of the layout; writing them (dict literals, the demo's synthetic benchmarks) is not.
"""

from __future__ import annotations

import re
from pathlib import Path

from biomamba.benchmarks import FORMATS

SRC = Path(__file__).resolve().parents[2] / "src" / "biomamba"
# fields too generic to belong to one format ("question", "label", "text", ...) are left out
GENERIC = {"answer", "choices", "context", "gold", "label", "options", "passage", "query", "question", "text"}
OWN_FIELDS = sorted({k for f in FORMATS.values() for k in f.keys} - GENERIC | {"exact_answer", "snippets"})


def _reads(source: str, key: str) -> bool:
    quoted = f"[\"']{re.escape(key)}[\"']"
    return re.search(rf"\[\s*{quoted}\s*\]|\.get\(\s*{quoted}|\bfield\([^)\n]*{quoted}", source) is not None


def test_no_module_outside_the_registry_reads_a_formats_own_fields():
    assert {"answer_idx", "cop", "CONTEXTS", "final_decision", "exact_answer", "answerKey"} <= set(OWN_FIELDS)
    readers = {
        f"{path.relative_to(SRC)}: {key}"
        for path in SRC.rglob("*.py")
        if "benchmarks" not in path.relative_to(SRC).parts
        for key in OWN_FIELDS
        if _reads(path.read_text(encoding="utf-8"), key)
    }
    assert not readers


def test_the_check_finds_a_second_reader():
    assert _reads('gold = "ABCD".index(rec["answer_idx"])', "answer_idx")
    assert _reads("cop = int(record.get('cop', 0))", "cop")
    assert not _reads('rows.append({"answer_idx": letter})', "answer_idx")  # writing the layout
