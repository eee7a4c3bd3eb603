"""Clinical notes: loaders (MIMIC-IV-Note, MTSamples, ACI-Bench), section parsing, and the generation tasks.

Two tasks are built from any note (the ones the clinical-summarisation literature uses on MIMIC):
- note completion: the first half of a note (cut at a word boundary) -> the rest;
- discharge-summary generation: the admission-side sections (chief complaint, history, exam, results, ...)
  -> the discharge-side sections (hospital course, discharge diagnosis, medications, instructions, ...).

Splits are by PATIENT (`subject_id` for MIMIC), decided by a salted SHA-256 of the patient id, so no patient
is ever in two splits (a model must not be scored on a patient whose other admissions it trained on), and a
patient never moves between splits when notes are added. Sources without a patient id (MTSamples, ACI-Bench)
use the note or encounter id as the key.

Section headers are found three ways, because the three public formats differ: MIMIC's `Title Case:` at a line
start, MTSamples' inline `ALL CAPS:,` and ACI-Bench's `ALL CAPS` lines. A header is the known section
vocabulary or any all-caps header; its role (input or target) comes from keywords, and an unrecognised
header (an exam sub-heading such as `HEENT:`) inherits the role of the section it sits in.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import io
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biomamba.errors import DataError
from biomamba.finetune.records import BadRecords

MIMIC_COLUMNS = (
    "note_id",
    "subject_id",
    "hadm_id",
    "note_type",
    "note_seq",
    "charttime",
    "storetime",
    "text",
)
DEFAULT_TARGET_KEYWORDS: tuple[str, ...] = (
    "hospital course",
    "course in the hospital",
    "discharge",
    "disposition",
    "follow",
    "condition on",
    "assessment",
    "plan",
    "impression",
    "instructions",
)
INPUT_KEYWORDS: tuple[str, ...] = ("admission", "admitting", "admit")
# Checked after the target keywords: "discharge physical exam" is a target, "physical exam" an input.
INPUT_HINTS: tuple[str, ...] = (
    "history",
    "complaint",
    "exam",
    "result",
    "lab",
    "procedure",
    "operation",
    "allerg",
    "medication",
    "review of systems",
    "vital",
    "imaging",
    "x-ray",
    "data",
)
KNOWN_HEADERS = frozenset(
    {
        "chief complaint",
        "history of present illness",
        "past medical history",
        "past surgical history",
        "social history",
        "family history",
        "allergies",
        "medications",
        "medications on admission",
        "physical exam",
        "physical examination",
        "pertinent results",
        "major surgical or invasive procedure",
        "review of systems",
        "brief hospital course",
        "hospital course",
        "discharge medications",
        "discharge disposition",
        "discharge diagnosis",
        "discharge diagnoses",
        "discharge condition",
        "discharge instructions",
        "followup instructions",
        "assessment and plan",
        "impression",
        "history",
    }
)
_TITLE_HEADER = re.compile(r"^[ \t]*(?P<h>[A-Z][A-Za-z /&'()-]{1,60}?)[ \t]*:", re.M)
_CAPS_COLON = re.compile(
    r"(?:^|(?<=[,.;]))[ \t]*(?P<h>[A-Z][A-Z0-9 /&'()-]{1,60}?[A-Z)])[ \t]*:[ \t]*,?", re.M
)
_CAPS_LINE = re.compile(r"^[ \t]*(?P<h>[A-Z][A-Z /&'()-]{2,60}[A-Z)])[ \t]*$", re.M)


@dataclass(frozen=True)
class ClinicalNote:
    """One note with the id of the patient it belongs to (the split key)."""

    note_id: str
    patient_id: str
    text: str
    source: str = ""


@dataclass(frozen=True)
class Section:
    header: str  # "" for text before the first header
    body: str


@dataclass(frozen=True)
class GenerationExample:
    """A prompt -> reference pair of the clinical generation tasks."""

    id: str
    patient_id: str
    prompt: str
    reference: str
    task: str
    source: str = ""  # the note's format (mimic-iv-note, mtsamples, aci-bench): per-source counts


# ----------------------------------------------------------------------------------------------- splitting


def split_of(key: str, fractions: dict[str, float], seed: int = 0) -> str:
    """The split a key falls in: a salted SHA-256 mapped to [0, 1), cut at the cumulative fractions.

    Hash-based rather than shuffled so the answer depends on the key alone: stable across runs, machines and
    additions of data, and identical for every note of one patient.
    """
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    names = list(fractions)
    for name in names:
        cumulative += fractions[name]
        if point < cumulative:
            return name
    return names[-1]


def split_by_patient(
    notes: Iterable[ClinicalNote], fractions: dict[str, float], seed: int = 0
) -> dict[str, list[ClinicalNote]]:
    """Group notes into splits by patient id (all of a patient's notes go to the same split)."""
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {sum(fractions.values())}")
    result: dict[str, list[ClinicalNote]] = {name: [] for name in fractions}
    for note in notes:
        result[split_of(note.patient_id, fractions, seed)].append(note)
    return result


# ------------------------------------------------------------------------------------------------- loaders


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def load_mimic_notes(
    path: str | Path, *, bad: BadRecords | None = None, note_types: Sequence[str] = ("DS",)
) -> Iterator[ClinicalNote]:
    """Stream MIMIC-IV-Note `discharge.csv.gz` (or .csv) rows as notes, keyed by `subject_id`.

    The column set is checked against MIMIC-IV-Note's exactly, so a wrong file fails at once instead of
    producing an empty dataset. Rows of other note types (e.g. radiology `RR`) are passed over.
    """
    path = Path(path)
    bad = bad or BadRecords()
    if not path.is_file():
        raise DataError(f"{path}: file not found (MIMIC-IV-Note is credentialed: download it from PhysioNet)")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # discharge notes exceed csv's 128 KiB default
    try:
        with _open_text(path) as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in MIMIC_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(
                    f"{path}: not a MIMIC-IV-Note discharge file, missing columns {missing} "
                    f"(have {reader.fieldnames})"
                )
            for number, row in enumerate(reader, start=1):
                # rows, not physical lines: note texts span many lines
                where = f"{path}: row {number} (note_id {row.get('note_id') or '?'})"
                if note_types and row.get("note_type") not in note_types:
                    continue
                text = (row.get("text") or "").strip()
                subject = (row.get("subject_id") or "").strip()
                if not subject:
                    bad.report(where, "missing subject_id")
                    continue
                if not text:
                    bad.report(where, "empty note")
                    continue
                yield ClinicalNote(row["note_id"], subject, text, "mimic-iv-note")
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def load_mtsamples(
    path: str | Path,
    *,
    specialty: str | None = "Discharge Summary",
    bad: BadRecords | None = None,
) -> list[ClinicalNote]:
    """MTSamples notes from the `mtsamples.rda` R data file, optionally of one specialty only."""
    path = Path(path)
    bad = bad or BadRecords()
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    frame = _read_mtsamples_frame(str(path.resolve()), path.stat().st_mtime_ns)
    notes = []
    for row in frame.itertuples(index=False):
        if specialty and str(row.medical_specialty).strip() != specialty:
            continue
        text = str(row.transcription or "").strip() if row.transcription is not None else ""
        if not text or text == "nan":
            bad.report(f"{path}: note_id {row.note_id}", "empty note")
            continue
        notes.append(ClinicalNote(str(row.note_id), str(row.note_id), text, "mtsamples"))
    return notes


@functools.lru_cache(maxsize=2)
def _read_mtsamples_frame(path: str, mtime_ns: int) -> Any:
    """Parse the .rda once per process (a few seconds): train and eval sources usually share the file."""
    del mtime_ns  # part of the cache key only: an edited file is read again
    try:
        import rdata
    except ImportError:  # pragma: no cover - rdata is a declared dependency
        raise DataError("reading MTSamples needs the 'rdata' package: pip install rdata") from None
    try:
        return rdata.read_rda(path)["mtsamples"]
    except Exception as exc:  # rdata raises a variety of parse errors
        raise DataError(f"{path}: not an R data file with an 'mtsamples' table ({exc})") from None


def load_aci_bench(path: str | Path, *, bad: BadRecords | None = None) -> list[ClinicalNote]:
    """ACI-Bench notes (CSV: dataset, encounter_id, dialogue, note), keyed by encounter id."""
    path = Path(path)
    bad = bad or BadRecords()
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    notes = []
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        if not {"encounter_id", "note"} <= set(reader.fieldnames or []):
            raise DataError(f"{path}: not an ACI-Bench file, need columns encounter_id and note")
        for number, row in enumerate(reader, start=1):
            text = (row.get("note") or "").strip()
            encounter = (row.get("encounter_id") or "").strip()
            if not text:
                bad.report(f"{path}: row {number} (encounter {encounter})", "empty note")
                continue
            notes.append(ClinicalNote(encounter, encounter, text, "aci-bench"))
    return notes


# ------------------------------------------------------------------------------------------------ sections


def _is_header(name: str, caps_only: bool) -> bool:
    letters = [c for c in name if c.isalpha()]
    if len(letters) < 2:
        return False
    if name.isupper():
        return True
    return not caps_only and name.lower().strip() in KNOWN_HEADERS


def parse_sections(text: str) -> list[Section]:
    """Split a note into (header, body) sections; text before the first header has header ''."""
    found: dict[int, tuple[int, str]] = {}
    for pattern, caps_only in ((_TITLE_HEADER, False), (_CAPS_COLON, True), (_CAPS_LINE, True)):
        for match in pattern.finditer(text):
            name = match.group("h").strip()
            if _is_header(name, caps_only) and not any(s <= match.start() < e for s, (e, _) in found.items()):
                found[match.start()] = (match.end(), name)
    sections: list[Section] = []
    starts = sorted(found)
    preamble = text[: starts[0]] if starts else text
    if preamble.strip(" \t\n,"):
        sections.append(Section("", preamble.strip(" \t\n,")))
    for index, start in enumerate(starts):
        end, name = found[start]
        stop = starts[index + 1] if index + 1 < len(starts) else len(text)
        sections.append(Section(name, text[end:stop].strip(" \t\n,")))
    return sections


def section_roles(
    sections: Sequence[Section], target_keywords: Sequence[str] = DEFAULT_TARGET_KEYWORDS
) -> list[str]:
    """'input' or 'target' per section: keywords decide, unknown headers inherit the previous role.

    Order matters: admission words first ("Medications on Admission" is an input even though it follows the
    hospital course), then the target keywords, then input hints; anything else (exam sub-headings like
    "HEENT", MTSamples' "COMPLICATIONS") belongs with the section it follows.
    """
    roles = []
    current = "input"
    for section in sections:
        name = section.header.lower()
        if any(k in name for k in INPUT_KEYWORDS):
            current = "input"
        elif any(k in name for k in target_keywords):
            current = "target"
        elif any(k in name for k in INPUT_HINTS):
            current = "input"
        roles.append(current)
    return roles


def _render(sections: Iterable[Section]) -> str:
    parts = []
    for section in sections:
        if not section.body:
            continue
        parts.append(f"{section.header.upper()}:\n{section.body}" if section.header else section.body)
    return "\n\n".join(parts)


# --------------------------------------------------------------------------------------------------- tasks


def note_completion(note: ClinicalNote) -> GenerationExample | None:
    """First half of the note (cut at the whitespace nearest the middle) -> the rest."""
    text = note.text.strip()
    middle = len(text) // 2
    cut = text.rfind(" ", 0, middle + 1)
    if cut <= 0:
        cut = text.find(" ", middle)
    if cut <= 0:
        return None
    prompt, reference = text[:cut].rstrip(), text[cut:].strip()
    if not prompt or not reference:
        return None
    return GenerationExample(note.note_id, note.patient_id, prompt, reference, "note-completion", note.source)


def discharge_summary(
    note: ClinicalNote, target_keywords: Sequence[str] = DEFAULT_TARGET_KEYWORDS
) -> GenerationExample | None:
    """Admission-side sections -> discharge-side sections; None when either side is empty."""
    sections = parse_sections(note.text)
    roles = section_roles(sections, target_keywords)
    inputs = _render(s for s, r in zip(sections, roles, strict=True) if r == "input")
    targets = _render(s for s, r in zip(sections, roles, strict=True) if r == "target")
    if not inputs or not targets:
        return None
    return GenerationExample(note.note_id, note.patient_id, inputs, targets, "discharge-summary", note.source)


def build_generation_examples(
    notes: Iterable[ClinicalNote],
    task: str,
    *,
    target_keywords: Sequence[str] = DEFAULT_TARGET_KEYWORDS,
    unusable: Counter[str] | None = None,
) -> list[GenerationExample]:
    """Apply one task to every note; notes the task cannot use are counted in `unusable`, never lost silently.

    A note without discharge-side sections is valid data, just not for this task, so it is counted rather
    than treated as a bad record.
    """
    examples = []
    for note in notes:
        if task == "note-completion":
            example = note_completion(note)
        elif task == "discharge-summary":
            example = discharge_summary(note, target_keywords)
        else:
            raise ValueError(f"unknown clinical task {task!r}")
        if example is None:
            if unusable is not None:
                unusable[f"{task}: no usable sections"] += 1
            continue
        examples.append(example)
    return examples
