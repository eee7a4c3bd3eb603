"""Turn a recipe's data sources into task examples: the glue between config, loaders and templates."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from biomamba.finetune.clinical import (
    DEFAULT_TARGET_KEYWORDS,
    GenerationExample,
    build_generation_examples,
    load_aci_bench,
    load_mimic_notes,
    load_mtsamples,
    split_by_patient,
)
from biomamba.finetune.config import DataSource, FinetuneConfig
from biomamba.finetune.records import (
    BadRecords,
    QAExample,
    load_bioasq_yesno,
    load_medmcqa,
    load_medqa,
    load_pubmedqa,
    load_qa_jsonl,
    pubmedqa_test_ids,
)


def load_qa_source(source: DataSource, bad: BadRecords) -> list[QAExample]:
    """QA examples of one source, split and limited as the recipe says."""
    if source.format == "pubmedqa":
        ids = pubmedqa_test_ids(source.test_ids) if source.test_ids else None
        examples = load_pubmedqa(source.path, split=source.split, test_ids=ids, bad=bad)  # type: ignore[arg-type]
    elif source.format == "bioasq":
        examples = load_bioasq_yesno(source.path, bad=bad)
    elif source.format == "medqa":
        examples = load_medqa(source.path, bad=bad)
    elif source.format == "medmcqa":
        examples = load_medmcqa(source.path, bad=bad)
    else:
        examples = load_qa_jsonl(
            source.path,
            question_field=source.question_field,
            answer_field=source.answer_field,
            context_field=source.context_field,
            bad=bad,
        )
    return examples[: source.limit] if source.limit else examples


def load_note_source(
    source: DataSource, config: FinetuneConfig, bad: BadRecords, unusable: Counter[str]
) -> list[GenerationExample]:
    """Clinical generation examples of one note source, split by patient when a split is named."""
    if source.format == "mimic-iv-note":
        notes = list(load_mimic_notes(source.path, bad=bad))
    elif source.format == "mtsamples":
        notes = load_mtsamples(source.path, specialty=source.specialty, bad=bad)
    else:
        notes = load_aci_bench(source.path, bad=bad)
    if source.split != "all":
        notes = split_by_patient(notes, config.split_fractions, config.split_seed)[source.split]
    keywords = tuple(config.target_sections) if config.target_sections else DEFAULT_TARGET_KEYWORDS
    examples = build_generation_examples(
        notes, config.clinical_task, target_keywords=keywords, unusable=unusable
    )
    return examples[: source.limit] if source.limit else examples


def load_sources(
    sources: Sequence[DataSource], config: FinetuneConfig, bad: BadRecords, unusable: Counter[str]
) -> list[QAExample] | list[GenerationExample]:
    """All examples of a list of sources, in recipe order (mixing = concatenation, then the trainer shuffles)."""
    out: list = []
    for source in sources:
        if config.task == "clinical-generation":
            out.extend(load_note_source(source, config, bad, unusable))
        else:
            out.extend(load_qa_source(source, bad))
    return out
