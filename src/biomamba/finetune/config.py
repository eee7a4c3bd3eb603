"""Schema of the `finetune:` recipe section (registered as `biomamba.finetune.config:FinetuneConfig`).

A fine-tuning recipe has a `finetune:` section (task, data, base model, LoRA, evaluation) and optionally a
`train:` section, validated by the trainer's own `TrainConfig` (lr, batch sizes, steps, schedule, early
stopping, checkpoints), because fine-tuning runs in the same training loop as pretraining. Data paths must
exist, so a recipe whose (credentialed or offline-unavailable) data is missing fails at once with one line
naming the key.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from biomamba.config import ExistingFile, Section

TaskType = Literal["sft-qa", "clinical-generation", "mc-classifier", "seq-classifier"]
QA_FORMATS = ("pubmedqa", "bioasq", "medqa", "medmcqa", "qa-jsonl")
BENCHMARK_FORMATS = ("pubmedqa", "bioasq", "medqa", "medmcqa")  # read through biomamba.benchmarks
NOTE_FORMATS = ("mimic-iv-note", "mtsamples", "aci-bench")


class DataSource(Section):
    """One data file in its original format."""

    format: Literal[
        "pubmedqa", "bioasq", "medqa", "medmcqa", "qa-jsonl", "mimic-iv-note", "mtsamples", "aci-bench"
    ]
    path: Path = Field(
        description="The file in its original format (see docs/finetune.md); for the benchmark formats "
        "(pubmedqa, bioasq, medqa, medmcqa) also a folder or a glob, read as eval reads it (BioASQ's "
        "yearly golden files: records de-duplicated by id)."
    )
    split: Literal["all", "train", "validation", "test"] = Field(
        "all",
        description="pubmedqa: train = PQA-L minus the official test ids, test = those ids. Notes "
        "(mimic-iv-note, mtsamples, aci-bench): a patient-level hash split with finetune.split_fractions.",
    )
    test_ids: ExistingFile | None = Field(
        None, description="pubmedqa: test_ground_truth.json (default: the file next to `path`)."
    )
    limit: int | None = Field(None, ge=1, description="Keep only the first N records (after the split).")
    question_field: str = "question"
    answer_field: str = "answer"
    context_field: str | None = None
    specialty: str | None = Field("Discharge Summary", description="mtsamples: medical_specialty to keep.")

    @field_validator("path")
    @classmethod
    def _path_exists(cls, path: Path, info: ValidationInfo) -> Path:
        _check_path(path, info.data.get("format", ""))
        return path

    @model_validator(mode="after")
    def _check(self) -> DataSource:
        if self.format == "pubmedqa" and self.split in ("train", "test") and self.test_ids is None:
            folder = self.path if self.path.is_dir() else self.path.parent
            sibling = folder / "test_ground_truth.json"
            if not sibling.is_file():
                raise ValueError(f"split '{self.split}' needs test_ids (no {sibling})")
            self.test_ids = sibling
        if self.format == "pubmedqa" and self.split == "validation":
            raise ValueError(
                "pubmedqa has train and test splits; hold out validation with validation_fraction"
            )
        return self


def _check_path(path: Path, format: str) -> None:
    """A benchmark format's path may be what biomamba.benchmarks reads (a file, a folder of data files, a
    glob), so finetune accepts exactly the forms eval does; other formats need one file."""
    if path.is_file():
        return
    if format in BENCHMARK_FORMATS and (path.is_dir() or glob.has_magic(str(path))):
        from biomamba.benchmarks import expand_paths
        from biomamba.errors import DataError

        try:
            expand_paths(path)
        except DataError as exc:  # a folder without data files, a glob matching nothing
            raise ValueError(str(exc)) from None
        return
    raise ValueError(f"file not found: {path}")


class LoraSection(Section):
    r: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | None = Field(
        None, description="Module names to adapt (default per family, e.g. Mamba2 in_proj/out_proj)."
    )
    merge: bool = Field(True, description="Also write final/ with the adapter merged into the base weights.")


class EvaluationSection(Section):
    before: bool = Field(True, description="Evaluate the base model too, for the before/after comparison.")
    on_train: int = Field(
        256, ge=0, description="Also score this many TRAINING questions (a check that SFT learned)."
    )
    limit: int | None = Field(None, ge=1, description="Evaluate on the first N eval examples only.")
    batch_size: int = Field(16, ge=1)
    max_new_tokens: int = Field(256, ge=1, description="Generation budget per clinical note.")
    max_prompt_tokens: int = Field(768, ge=8, description="Clinical prompts keep their last N tokens.")


class FinetuneConfig(Section):
    """What to fine-tune, on what, and how to judge it."""

    task: TaskType
    base_model: str = Field(
        description="Model directory (any biomamba checkpoint), or a hub name when online."
    )
    tokenizer: str | None = Field(None, description="Default: the base model's tokenizer.")
    train_data: list[DataSource] = Field(min_length=1)
    eval_data: list[DataSource] = Field(default_factory=list, description="Held-out test data.")
    validation_data: list[DataSource] = Field(
        default_factory=list, description="Validation data for early stopping (else validation_fraction)."
    )
    validation_fraction: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Hold out this share of train_data for validation when none is given.",
    )
    clinical_task: Literal["discharge-summary", "note-completion"] = "discharge-summary"
    target_sections: list[str] | None = Field(
        None,
        description="Header keywords of the sections to generate (default: hospital course, discharge...).",
    )
    split_fractions: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1}
    )
    split_seed: int = 0
    template: Literal["auto", "plain", "chat"] = "plain"
    max_length: int = Field(512, ge=8, description="Tokens per training example (prompt cut from the left).")
    packing: bool = Field(True, description="Pack examples into max_length rows (documents kept apart).")
    epochs: float = Field(3.0, gt=0, description="Used when train.max_steps/max_tokens is not set.")
    method: Literal["full", "lora", "qlora"] = "full"
    lora: LoraSection = Field(default_factory=LoraSection)
    on_bad_record: Literal["error", "skip"] = "error"
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    source: str | None = Field(None, description="Human note: the published setup this recipe reproduces.")

    @field_validator("split_fractions")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        if set(value) != {"train", "validation", "test"}:
            raise ValueError("split_fractions needs exactly train, validation and test")
        if any(v < 0 for v in value.values()) or abs(sum(value.values()) - 1.0) > 1e-6:
            raise ValueError(f"split_fractions must be >= 0 and sum to 1 (got {sum(value.values()):.4g})")
        return value

    @model_validator(mode="after")
    def _formats_match_task(self) -> FinetuneConfig:
        allowed = NOTE_FORMATS if self.task == "clinical-generation" else QA_FORMATS
        for field_name in ("train_data", "eval_data", "validation_data"):
            for index, source in enumerate(getattr(self, field_name)):
                if source.format not in allowed:
                    raise ValueError(
                        f"{field_name}[{index}]: format '{source.format}' does not fit task '{self.task}' "
                        f"(use one of {', '.join(allowed)})"
                    )
                if self.task == "mc-classifier" and source.format == "qa-jsonl":
                    raise ValueError(f"{field_name}[{index}]: qa-jsonl has no options for mc-classifier")
        free_text = any(s.format == "qa-jsonl" for s in [*self.train_data, *self.eval_data])
        if self.task == "sft-qa" and free_text and self.evaluation.max_new_tokens >= self.max_length:
            raise ValueError(
                f"evaluation.max_new_tokens ({self.evaluation.max_new_tokens}) must be below max_length "
                f"({self.max_length}): free-text answers are generated within max_length"
            )
        return self
