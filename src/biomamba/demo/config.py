"""Schema of the `demo:` recipe section: what differs between the demo's two training phases.

The shared settings (architecture, sequence length, batch, evaluation cadence) live in the ordinary `train:`
section, so the demo runs the same code paths as a real recipe; this section only says how the "base" phase
(mostly general text, from scratch) and the "continued" phase (the mixture, from the base) differ.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from biomamba.config import Section

BASE_DOMAINS = ("pubmed", "c4", "wikipedia")
DEMO_TASKS = ("pubmedqa", "medqa_4options")  # the synthetic question sets biomamba.demo.synthetic writes


class PhaseConfig(Section):
    """One training phase of the demo."""

    max_steps: int = Field(..., ge=1)
    lr: float = Field(..., gt=0.0)


class DemoConfig(Section):
    """The demo's phases, evaluation settings and corpus size."""

    seed: int = 1234
    base_ratios: dict[str, float] = Field(
        default_factory=lambda: {"pubmed": 0.25, "c4": 0.375, "wikipedia": 0.375},
        description="Token ratios of the base model's corpus: general text with a quarter PubMed-style text, as "
        "real Mamba2 checkpoints saw PubMed in the Pile (about 14% PubMed Central and 3% PubMed abstracts). A "
        "little more than the Pile's share, because the tiny base reads only a few hundred documents of it: "
        "with 10% it learnt none of the facts its PubMed-style text states (issue 15).",
    )
    base: PhaseConfig = Field(default_factory=lambda: PhaseConfig(max_steps=150, lr=3e-3))
    continued: PhaseConfig = Field(default_factory=lambda: PhaseConfig(max_steps=150, lr=1e-3))
    eval_seq_len: int = Field(256, ge=8)
    threads: int | None = Field(
        1,
        ge=1,
        description="torch CPU threads (None: torch's default). A model this small gains little from more, "
        "and one thread does not slow down tenfold when other processes share the cores.",
    )
    mc_tasks: list[str] = Field(
        default_factory=lambda: ["pubmedqa", "medqa_4options"],
        description="Multiple-choice tasks scored on the synthetic questions (lm-eval log-likelihood protocol).",
    )

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
