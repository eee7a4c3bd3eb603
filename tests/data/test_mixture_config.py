"""Mixture planning (pure) and recipe validation of the data section."""

from __future__ import annotations

import numpy as np
import pytest

from biomamba.config.recipe import load_section, schema_for
from biomamba.data.config import DataConfig
from biomamba.data.mixture import plan_mixture
from biomamba.errors import DataError, RecipeError


def _lengths(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "pubmed": rng.integers(150, 400, 500),
        "c4": rng.integers(50, 3000, 80),
        "wikipedia": rng.integers(2000, 20000, 6),
    }


def test_plan_hits_ratios_to_the_token_even_with_long_documents():
    ratios = {"pubmed": 0.8, "c4": 0.1, "wikipedia": 0.1}
    plan = plan_mixture(_lengths(0), ratios, None, seed=0)
    report = plan.report()
    assert report["within_tolerance"] and report["max_error_pp"] < 0.01
    # the scarcest domain is used whole
    assert report["domains"]["pubmed"]["repeat_factor"] == pytest.approx(1.0)
    for domain, row in report["domains"].items():
        assert row["tokens"] == plan.domains[domain].limits.sum()
        assert (plan.domains[domain].limits <= _lengths(0)[domain][plan.domains[domain].selected]).all()
        assert (plan.domains[domain].limits < _lengths(0)[domain][plan.domains[domain].selected]).sum() <= 1


def test_plan_repeats_small_domains_and_reports_it():
    plan = plan_mixture(
        _lengths(1), {"pubmed": 0.5, "c4": 0.2, "wikipedia": 0.3}, total_tokens=500_000, seed=3
    )
    report = plan.report()
    assert report["total_tokens"] == 500_000
    wiki = report["domains"]["wikipedia"]
    assert wiki["repeated"] and wiki["full_passes"] >= 1 and wiki["repeat_factor"] > 1
    assert report["within_tolerance"]


def test_plan_is_deterministic_per_seed():
    a = plan_mixture(_lengths(2), {"pubmed": 0.9, "c4": 0.1}, None, seed=5)
    b = plan_mixture(_lengths(2), {"pubmed": 0.9, "c4": 0.1}, None, seed=5)
    c = plan_mixture(_lengths(2), {"pubmed": 0.9, "c4": 0.1}, None, seed=6)
    assert (a.domains["c4"].selected == b.domains["c4"].selected).all()
    assert not np.array_equal(a.domains["c4"].selected, c.domains["c4"].selected)


def test_empty_domain_is_a_clear_error():
    with pytest.raises(DataError, match="no training documents left in domain"):
        plan_mixture({"pubmed": np.array([10]), "c4": np.zeros(0, int)}, {"pubmed": 0.5, "c4": 0.5}, None, 0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sources": {"pubmed": [{"type": "jsonl", "path": "x"}]}, "ratios": {"pubmed": 0.5}}, "ratios must sum to 1"),
        ({"sources": {"pubmed": [{"type": "jsonl", "path": "x"}]}, "ratios": {"c4": 1.0}}, "without sources: c4"),
        ({"sources": {"pubmed": [{"type": "xml", "path": "x"}]}, "ratios": {"pubmed": 1.0}}, "data.sources.pubmed.0.type"),
        ({"sources": {"pubmed": [{"type": "jsonl", "path": "x"}]}, "ratios": {"pubmed": 1.0}, "dedup": {"threshold": 1.5}}, "data.dedup.threshold"),
        ({"sources": {"pubmed": [{"type": "jsonl", "path": "x"}]}, "ratios": {"pubmed": 1.0}, "shards": 3}, "data.shards: unknown key"),
    ],
)  # fmt: skip
def test_recipe_errors_name_the_key(data, message):
    with pytest.raises(RecipeError, match=message):
        load_section({"data": data}, "data", DataConfig, "r.yaml")


def test_registered_schemas_import():
    assert schema_for("data") is DataConfig
    assert schema_for("tokenizer").__name__ == "TokenizerConfig"
