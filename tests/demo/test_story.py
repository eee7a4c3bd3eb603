"""The demo's numbers tell BioMamba's story, asserted on one run of the shipped recipe (`recipes/demo.yaml`).

Continued pretraining must lower PubMed perplexity by a margin and keep general perplexity within a tolerance,
and the report must open with its summary and name every degenerate metric (the same answer to every
question). Not reached yet at this scale (issue 15): the tiny model does not answer from the corpus's facts,
so multiple-choice accuracy is the majority answer before and after; `test_no_metric_is_degenerate` is a strict
expected failure that turns into a failure the day it passes. A regression in any stage (corpus, tokenizer, trainer, evaluation) that breaks
the story fails here. One seeded run serves every assertion; it is the suite's longest test (about two
minutes of CPU on 2 cores).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from biomamba.demo.run import run_demo

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
PUBMED_GAIN = 0.10  # PubMed perplexity falls by at least 10%
# C4 / Wikipedia move by at most 10%. The demo measures about +6% on Wikipedia: beyond BioMamba's +/-3% claim,
# which the report flags as forgetting (general_claim); this bound catches a stage that breaks the story.
GENERAL_TOLERANCE = 0.10

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_demo(
        RECIPE,
        output_dir=tmp_path_factory.mktemp("demo"),
        overrides={"train.progress": False},
        say=lambda _: None,
    )


def test_pubmed_perplexity_falls_by_a_margin(story: dict[str, Any]) -> None:
    pubmed = story["perplexity"]["pubmed"]
    assert pubmed["change"] <= -PUBMED_GAIN, pubmed
    assert pubmed["before"] < 50, "the base model has seen PubMed-style text: no first-contact perplexity"


def test_general_perplexity_stays_within_tolerance(story: dict[str, Any]) -> None:
    general = {d: row for d, row in story["perplexity"].items() if row["general"]}
    assert set(general) == {"c4", "wikipedia"}
    for domain, row in general.items():
        assert abs(row["change"]) <= GENERAL_TOLERANCE, (domain, row)
    claim = story["general_claim"]
    assert claim["within"] == all(abs(r["change"]) <= claim["tolerance"] for r in general.values())


@pytest.mark.xfail(
    reason="issue 15, not reached yet: at this scale (0.6M parameters, ~300k tokens) the model answers every "
    "PubMedQA question 'yes' before and after, and (before) every MedQA question 'A'; the report says so",
    strict=True,  # the day the demo's model answers from the facts, this passes and the marker must go
)
def test_no_metric_is_degenerate(story: dict[str, Any]) -> None:
    reasons = [
        (task, phase, metric, reason)
        for task, row in story["multiple_choice"].items()
        for phase, metrics in row["degenerate"].items()
        for metric, reason in metrics.items()
        if reason
    ]
    assert reasons == []


def test_degenerate_metrics_are_named_in_the_report(story: dict[str, Any]) -> None:
    report = (Path(story["runs"]["base"]["run_dir"]).parent / "report.md").read_text()
    for task, row in story["multiple_choice"].items():
        for metrics in row["degenerate"].values():
            for reason in filter(None, metrics.values()):
                assert reason in report, (task, reason)


def test_report_opens_with_the_three_line_summary(story: dict[str, Any]) -> None:
    report = (Path(story["runs"]["base"]["run_dir"]).parent / "report.md").read_text().splitlines()
    summary = [line for line in report[1:6] if line.startswith("- ")]
    assert [line.split(":")[0] for line in summary] == ["- Trained", "- Improved", "- Cost"]
    assert "0.0 [0.0, 0.0]" not in "\n".join(report)
    assert set(story["stage_seconds"]) >= {"base pretraining", "continued pretraining", "evaluation"}
