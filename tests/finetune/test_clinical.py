from __future__ import annotations

import csv
import gzip
from collections import Counter
from pathlib import Path

import pytest

from biomamba.errors import DataError
from biomamba.finetune.clinical import (
    MIMIC_COLUMNS,
    build_generation_examples,
    discharge_summary,
    load_aci_bench,
    load_mimic_notes,
    load_mtsamples,
    note_completion,
    parse_sections,
    section_roles,
    split_by_patient,
)
from biomamba.finetune.records import BadRecords

MIMIC_NOTE = """ \nName:  ___                     Unit No:   ___\n \nAdmission Date:  ___              Discharge Date:   ___\n \nService: MEDICINE\n \nAllergies: \nNo Known Allergies / Adverse Drug Reactions\n \nChief Complaint:\nWorsening abdominal distension and pain\n \nHistory of Present Illness:\nHCV cirrhosis complicated by ascites, presenting with {n} days of distension.\n \nPhysical Exam:\nADMISSION PHYSICAL EXAM:\nVS: 98.1 107/61 84 18 97RA\nGENERAL: in no acute distress\nDISCHARGE PHYSICAL EXAM:\nVS: 98.4 98/60 72 18 98RA\n \nPertinent Results:\n___ 10:25PM BLOOD WBC-5.0\n \nBrief Hospital Course:\nThe patient underwent paracentesis with {n} L removed and improved.\n \nMedications on Admission:\n1. Furosemide 40 mg PO DAILY\n \nDischarge Medications:\n1. Furosemide 20 mg PO DAILY\n \nDischarge Disposition:\nHome\n \nDischarge Diagnosis:\nAscites\n \nDischarge Instructions:\nPlease weigh yourself every day.\n \nFollowup Instructions:\n___\n"""


def write_mimic(path: Path, rows: list[dict[str, str]]) -> Path:
    with gzip.open(path, "wt", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(MIMIC_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return path


def mimic_row(subject: int, seq: int, text: str, note_type: str = "DS") -> dict[str, str]:
    return {
        "note_id": f"{subject}-{note_type}-{seq}",
        "subject_id": str(subject),
        "hadm_id": str(20000000 + subject * 10 + seq),
        "note_type": note_type,
        "note_seq": str(seq),
        "charttime": "2180-05-07 00:00:00",
        "storetime": "2180-05-09 15:26:00",
        "text": text,
    }


def test_mimic_split_is_by_patient(tmp_path: Path) -> None:
    rows = [
        mimic_row(s, k, MIMIC_NOTE.format(n=s + k)) for s in range(10000001, 10000061) for k in range(1, 4)
    ]
    rows.append(mimic_row(10000001, 9, "Radiology report", note_type="RR"))
    path = write_mimic(tmp_path / "discharge.csv.gz", rows)
    notes = list(load_mimic_notes(path))
    assert len(notes) == 180  # the radiology row is not a discharge note
    fractions = {"train": 0.8, "validation": 0.1, "test": 0.1}
    splits = split_by_patient(notes, fractions, seed=1)
    patients = {name: {n.patient_id for n in group} for name, group in splits.items()}
    assert not patients["train"] & patients["validation"]
    assert not patients["train"] & patients["test"]
    assert not patients["validation"] & patients["test"]
    for group in splits.values():  # every note of a patient sits with the others
        counts = Counter(n.patient_id for n in group)
        assert set(counts.values()) == {3}
    assert sum(len(p) for p in patients.values()) == 60
    assert all(patients.values()), "60 patients should populate every split"
    again = split_by_patient(reversed(notes), fractions, seed=1)
    assert {k: {n.note_id for n in v} for k, v in again.items()} == {
        k: {n.note_id for n in v} for k, v in splits.items()
    }
    other_seed = split_by_patient(notes, fractions, seed=2)
    assert {n.patient_id for n in other_seed["test"]} != patients["test"]


def test_mimic_bad_rows_and_wrong_file(tmp_path: Path) -> None:
    rows = [
        mimic_row(1, 1, MIMIC_NOTE.format(n=1)),
        mimic_row(2, 1, "   "),
        dict(mimic_row(3, 1, "x"), subject_id=""),
    ]
    path = write_mimic(tmp_path / "discharge.csv.gz", rows)
    with pytest.raises(DataError, match=r"row 2 \(note_id 2-DS-1\): empty note"):
        list(load_mimic_notes(path))
    bad = BadRecords("skip")
    assert [n.note_id for n in load_mimic_notes(path, bad=bad)] == ["1-DS-1"]
    assert bad.counts == {"empty note": 1, "missing subject_id": 1}
    wrong = tmp_path / "notes.csv"
    wrong.write_text("id,text\n1,hello\n")
    with pytest.raises(DataError, match="missing columns"):
        list(load_mimic_notes(wrong))
    with pytest.raises(DataError, match="credentialed"):
        list(load_mimic_notes(tmp_path / "absent.csv.gz"))


def test_mimic_sections_and_discharge_task() -> None:
    text = MIMIC_NOTE.format(n=3)
    sections = parse_sections(text)
    headers = [s.header for s in sections]
    assert "Chief Complaint" in headers and "Brief Hospital Course" in headers and "GENERAL" in headers
    roles = dict(zip(headers, section_roles(sections), strict=False))
    assert roles["Chief Complaint"] == roles["Physical Exam"] == roles["Medications on Admission"] == "input"
    assert (
        roles["Brief Hospital Course"]
        == roles["Discharge Diagnosis"]
        == roles["DISCHARGE PHYSICAL EXAM"]
        == "target"
    )
    from biomamba.finetune.clinical import ClinicalNote

    example = discharge_summary(ClinicalNote("n", "p", text))
    assert example is not None
    assert "Worsening abdominal distension" in example.prompt and "Furosemide 40 mg" in example.prompt
    assert "paracentesis" not in example.prompt
    assert "paracentesis" in example.reference and "Please weigh yourself" in example.reference
    assert "Furosemide 40 mg" not in example.reference


def test_note_completion_halves_at_a_word_boundary() -> None:
    from biomamba.finetune.clinical import ClinicalNote

    note = ClinicalNote("n", "p", "alpha beta gamma delta epsilon zeta")
    example = note_completion(note)
    assert example is not None
    assert f"{example.prompt} {example.reference}" == note.text
    assert abs(len(example.prompt) - len(example.reference)) < 8
    assert note_completion(ClinicalNote("n", "p", "single")) is None


def test_mtsamples_discharge_summaries(shared_data: Path) -> None:
    notes = load_mtsamples(shared_data / "clinical/mtsamples/mtsamples.rda")
    assert len(notes) == 108
    unusable: Counter[str] = Counter()
    examples = build_generation_examples(notes, "discharge-summary", unusable=unusable)
    assert len(examples) + sum(unusable.values()) == 108
    assert len(examples) > 80
    course = [e for e in examples if "HOSPITAL COURSE" in e.reference]
    assert len(course) > 40
    assert all("HOSPITAL COURSE" not in e.prompt for e in course)


def test_aci_bench_notes(shared_data: Path) -> None:
    notes = load_aci_bench(shared_data / "clinical/aci-bench/train.csv")
    assert len(notes) == 67
    examples = build_generation_examples(notes, "discharge-summary")
    assert len(examples) == 67
    assert examples[0].prompt.startswith("CHIEF COMPLAINT") and "ASSESSMENT" in examples[0].reference
