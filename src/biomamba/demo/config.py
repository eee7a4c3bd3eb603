"""Schema of the `demo:` recipe section: what differs between the demo's two training phases.

The shared settings (architecture, sequence length, batch, evaluation cadence) live in the ordinary `train:`
section, so the demo runs the same code paths as a real recipe; this section only says how the "base" phase
(mostly general text, from scratch) and the "continued" phase (the mixture, from the base) differ.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from biomamba.config import Section

BASE_DOMAINS = ("pubmed", "c4", "wikipedia")
DEMO_TASKS = ("pubmedqa", "medqa_4options")  # the synthetic question sets biomamba.demo.synthetic writes


class PhaseConfig(Section):
    """One training phase of the demo."""

    max_steps: int = Field(..., ge=1)
    lr: float = Field(..., gt=0.0)


class DemoConfig(Section):
    """The demo's phases, evaluation settings and corpus size.

    The defaults are the shipped demo (`recipes/demo.yaml` leaves them here, their one home); a recipe or
    `--set demo.KEY=VALUE` changes them.
    """

    seed: int = 1234
    base_ratios: dict[str, float] = Field(
        default_factory=lambda: {"pubmed": 0.25, "c4": 0.375, "wikipedia": 0.375},
        description="Token ratios of the base model's corpus: general text with a quarter PubMed-style text, as "
        "real Mamba2 checkpoints saw PubMed in the Pile (about 14% PubMed Central and 3% PubMed abstracts). A "
        "little more than the Pile's share, because the tiny base reads only a few hundred documents of it: "
        "with 10% it learnt none of the facts its PubMed-style text states (issue 15).",
    )
    base: PhaseConfig = Field(
        default_factory=lambda: PhaseConfig(max_steps=300, lr=3e-3),
        description="The base model's pretraining from scratch: about 1.7 passes over its corpus, enough to know "
        "the background facts its PubMed-style text states, so its answers vary with the question (with 200 "
        "steps it answered every PubMedQA question 'yes' under acc_norm; issue 15).",
    )
    continued: PhaseConfig = Field(
        default_factory=lambda: PhaseConfig(max_steps=150, lr=5e-4),
        description="Continued pretraining from the base on the mixture: about 1.3 passes over the PubMed-style "
        "documents, at a sixth of the base's learning rate so general text is not forgotten.",
    )
    eval_seq_len: int = Field(128, ge=8, description="Perplexity window, the training sequence length.")
    threads: int | None = Field(
        2,
        ge=1,
        description="torch CPU threads (None: torch's default). Two give the same numbers as one, 1.26x faster "
        "on idle cores, 1.25x slower with one core busy (benchmarks/demo_train_step.py), as long as OpenMP's "
        "idle threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE, which `biomamba demo` sets before "
        "torch loads). Spinning, they were 2x slower than one thread with one core busy and up to 10x under "
        "heavier load, so without that policy the demo runs on one thread.",
    )
    mc_tasks: list[str] = Field(
        default_factory=lambda: ["pubmedqa", "medqa_4options"],
        description="Multiple-choice tasks scored on the synthetic questions (lm-eval log-likelihood protocol).",
    )

    @field_validator("base", "continued", mode="before")
    @classmethod
    def _over_the_default_phase(cls, value: object, info: ValidationInfo) -> object:
        """`--set demo.base.max_steps=200` changes the steps and keeps the default learning rate."""
        if not isinstance(value, dict):
            return value
        default = cls.model_fields[info.field_name].default_factory()  # type: ignore[misc]
        return {**default.model_dump(), **value}

    @field_validator("base_ratios")
    @classmethod
    def _ratios_sum_to_one(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(BASE_DOMAINS))
        if unknown:
            raise ValueError(f"the demo's domains are {list(BASE_DOMAINS)}, not {unknown}")
        total = sum(value.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"base_ratios must sum to 1 (got {total:g})")
        return value

    @field_validator("mc_tasks")
    @classmethod
    def _has_questions(cls, value: list[str]) -> list[str]:
        unknown = [task for task in value if task not in DEMO_TASKS]
        if unknown:
            raise ValueError(f"the demo has questions for {list(DEMO_TASKS)}, not {unknown}")
        return value
