"""The demo's numbers tell BioMamba's story, asserted on one run of the shipped recipe (`recipes/demo.yaml`).

Continued pretraining must lower PubMed perplexity by a margin, keep general perplexity within a tolerance,
and teach the facts the PubMed-style corpus states: PubMedQA accuracy rises on the same questions (its paired
interval above 0), no biomedical task gets worse, and no metric of either model is degenerate (the same answer
to every question). A regression in any stage (corpus, tokenizer, trainer, evaluation) that breaks
the story fails here. One seeded run serves every assertion; it is the suite's longest test (about 4 minutes
on this project's 2-core machine: one thread under pytest, whose torch loads without the passive OpenMP wait
policy; the numbers are the same as `biomamba demo`'s on two).

Neither model gives every question the same answer (the base, pretrained 300 steps, knows enough of the
background facts its PubMed-style text states for its answers to vary: 200 steps left it answering "yes" to
every PubMedQA question under acc_norm). That holds for the shipped seed, which this test runs, and for
`demo.seed=42`. With `demo.seed=7` the base still gives every MedQA question the same letter. MedQA's gain
(+7.8, +9.7 and +13.1 points, paired intervals above 0 on all three seeds) is measured, not asserted: three
seeds are too few to bound it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from biomamba.demo.run import run_demo

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
PUBMED_GAIN = 0.10  # PubMed perplexity falls by at least 10%
# C4 / Wikipedia perplexity moves by at most 3%, BioMamba's claim (the report's general_claim checks the same
# bound). Measured: C4 +1.6%, Wikipedia +1.9% (shipped seed); C4 +1.9%, Wikipedia +3.0% (2.96, demo.seed=7);
# C4 +0.9%, Wikipedia +1.8% (demo.seed=42).
GENERAL_TOLERANCE = 0.03
PUBMEDQA_MARGIN = 0.10  # after continued pretraining, PubMedQA beats the majority answer by 10 points

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


def test_pubmedqa_is_answered_from_the_facts_the_corpus_states(story: dict[str, Any]) -> None:
    row = story["multiple_choice"]["pubmedqa"]
    paired = row["paired"]
    assert paired["low"] > 0, paired  # after beats before on the same questions
    assert paired["after"] >= row["majority_baseline"] + PUBMEDQA_MARGIN, row
    assert row["after"]["acc_norm"] >= row["majority_baseline"] + PUBMEDQA_MARGIN, row


def test_no_biomedical_task_gets_worse(story: dict[str, Any]) -> None:
    for task, row in story["multiple_choice"].items():
        assert row["paired"]["high"] >= 0, (task, row["paired"])  # its interval is not entirely below 0


def _degenerate(story: dict[str, Any], phase: str) -> list[tuple[str, str, str]]:
    return [
        (task, metric, reason)
        for task, row in story["multiple_choice"].items()
        for metric, reason in row["degenerate"][phase].items()
        if reason
    ]


def test_no_metric_is_degenerate_after_continued_pretraining(story: dict[str, Any]) -> None:
    assert _degenerate(story, "after") == []


def test_no_metric_is_degenerate_before(story: dict[str, Any]) -> None:
    assert _degenerate(story, "before") == []


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
