"""Bootstrap intervals, ECE, paired comparisons and the forgetting flag."""

from __future__ import annotations

import numpy as np
import pytest

from biomamba.eval.metrics import bootstrap_interval, expected_calibration_error, paired_bootstrap
from biomamba.eval.results import compare_results


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 2, 50).astype(float)
    large = rng.integers(0, 2, 2000).astype(float)
    lo_s, hi_s = bootstrap_interval(small)
    lo_l, hi_l = bootstrap_interval(large)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < hi_s - lo_s
    assert bootstrap_interval([1.0] * 10) == (1.0, 1.0)
    # binomial normal-approximation width for p=0.5, n=2000 is ~0.044
    assert hi_l - lo_l == pytest.approx(2 * 1.96 * np.sqrt(0.25 / 2000), rel=0.15)


def test_ece_known_values():
    assert expected_calibration_error([1.0, 1.0], [1, 1]) == 0.0
    assert expected_calibration_error([0.9, 0.9, 0.9, 0.9], [1, 0, 0, 0]) == pytest.approx(0.65)
    # two bins: conf 0.25 (acc 0) and 0.75 (acc 1), equal weight -> 0.5*0.25 + 0.5*0.25
    assert expected_calibration_error([0.25, 0.75], [0, 1], bins=2) == pytest.approx(0.25)


def test_paired_bootstrap_is_tighter_than_unpaired_for_correlated_scores():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2, 400).astype(float)
    after = base.copy()
    flip = rng.choice(400, 20, replace=False)
    after[flip] = 1.0  # strictly better on a few questions
    stats = paired_bootstrap(base, after)
    assert stats["diff"] == pytest.approx(after.mean() - base.mean())
    assert stats["low"] >= 0.0 and stats["p_not_better"] < 0.05
    lo_a, hi_a = bootstrap_interval(after)
    lo_b, hi_b = bootstrap_interval(base)
    assert stats["high"] - stats["low"] < (hi_a - lo_a) + (hi_b - lo_b)  # unpaired difference interval
    assert paired_bootstrap([1, 0, 1], [1, 0, 1])["diff"] == 0.0


def _results(domain: str, correct: list[float]) -> dict:
    preds = [{"id": str(i), "correct": c, "seed": 0} for i, c in enumerate(correct)]
    return {
        "format": "biomamba-results/1",
        "model": {"name": "m"},
        "tasks": {"t": {"domain": domain, "predictions": preds}},
    }


def test_compare_flags_general_regressions_only():
    before = [1.0] * 80 + [0.0] * 20
    after = [1.0] * 70 + [0.0] * 30
    general = compare_results(_results("general", before), _results("general", after))["t"]
    assert general["diff"] == pytest.approx(-0.10) and general["regression"]
    biomedical = compare_results(_results("biomedical", before), _results("biomedical", after))["t"]
    assert not biomedical["regression"]
    small = compare_results(_results("general", before), _results("general", [1.0] * 78 + [0.0] * 22))["t"]
    assert not small["regression"]  # -2 points is within the 3-point tolerance
