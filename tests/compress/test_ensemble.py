"""Ensemble scoring from the eval stage's results files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from biomamba.compress.ensemble import ensemble_files, ensemble_probabilities, ensemble_results
from biomamba.errors import BiomambaError
from biomamba.eval.results import read_results

from .helpers import write_medqa_results


def test_probabilities_are_summed_softmaxes() -> None:
    a, b = [-1.0, -2.0, -3.0], [-3.0, -0.5, -2.0]
    expected = np.exp(a) / np.exp(a).sum() + np.exp(b) / np.exp(b).sum()
    np.testing.assert_allclose(ensemble_probabilities([a, b]), expected)
    with pytest.raises(ValueError, match="different numbers of choices"):
        ensemble_probabilities([a, b[:2]])


@pytest.fixture
def two_results(tmp_path: Path, tokenizer) -> list[Path]:
    return [write_medqa_results(tmp_path / f"m{seed}.json", tokenizer, seed, f"m{seed}") for seed in (0, 1)]


def test_ensemble_of_eval_results(two_results: list[Path], tmp_path: Path) -> None:
    combined = ensemble_files(two_results, tmp_path / "ens.json")
    a, b = (read_results(p)["tasks"]["medqa_4options"]["predictions"] for p in two_results)
    preds = combined["tasks"]["medqa_4options"]["predictions"]
    assert len(preds) == 6
    for pa, pb, pe in zip(a, b, preds, strict=True):
        assert pe["pred"] == int(np.argmax(ensemble_probabilities([pa["logliks"], pb["logliks"]])))
    acc = combined["tasks"]["medqa_4options"]["metrics"]["acc"]
    assert acc == np.mean([p["correct"] for p in preds])
    assert read_results(tmp_path / "ens.json")["model"]["family"] == "ensemble"
    # a model ensembled with itself answers exactly as it does alone
    alone = ensemble_results([read_results(two_results[0])] * 2, names=["m0", "m0b"])
    assert [p["pred"] for p in alone["tasks"]["medqa_4options"]["predictions"]] == [p["pred"] for p in a]


def test_mismatched_results_are_refused(two_results: list[Path]) -> None:
    a, b = read_results(two_results[0]), read_results(two_results[1])
    b["protocol"]["shots"] = 3
    with pytest.raises(BiomambaError, match="different protocols"):
        ensemble_results([a, b])
    b = read_results(two_results[1])
    b["tasks"]["medqa_4options"]["predictions"].pop()
    with pytest.raises(BiomambaError, match="different questions"):
        ensemble_results([a, b])
    with pytest.raises(BiomambaError, match="at least two"):
        ensemble_results([a])


def test_ensemble_command(two_results: list[Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from biomamba.cli.main import build_app

    out = tmp_path / "ens.json"
    args = ["ensemble", *map(str, two_results), "-o", str(out), "--weight", "2", "--weight", "1"]
    result = CliRunner().invoke(build_app(), args, catch_exceptions=False)
    assert result.exit_code == 0 and "medqa_4options: ensemble acc" in result.output
    assert json.loads(out.read_text())["model"]["weights"] == [2.0, 1.0]


def _results(name: str, task: str, predictions: list[dict]) -> dict:
    return {
        "format": "biomamba-results/1",
        "model": {"name": name},
        "protocol": {"name": "loglikelihood", "shots": 0},
        "tasks": {
            task: {"task": task, "language": "en", "metrics": {"acc": 0.5}, "predictions": predictions}
        },
    }


@pytest.mark.parametrize(
    ("task", "predictions", "why"),
    [
        # LAMBADA: one choice (the target word), so any ensemble would give it probability 1
        ("lambada", [{"id": "q1", "gold": 0, "pred": -1, "correct": 0.0, "logliks": [-7.5]}], "one choice"),
        # TruthfulQA MC2: the score is the probability mass on the true answers, not the argmax
        (
            "truthfulqa_mc2",
            [{"id": "q1", "gold": 0, "pred": 2, "correct": 0.4, "logliks": [-3.0, -2.5, -1.0]}],
            "probability mass",
        ),
    ],
)
def test_tasks_that_are_not_argmax_multiple_choice_are_refused(task, predictions, why) -> None:
    results = [_results(f"m{i}", task, predictions) for i in range(2)]
    with pytest.raises(BiomambaError, match=why) as error:
        ensemble_results(results)
    message = str(error.value)
    assert f"'{task}'" in message and "\n" not in message


def test_a_one_choice_task_unknown_to_the_registry_is_refused() -> None:
    preds = [{"id": "q1", "gold": 0, "pred": 0, "correct": 1.0, "logliks": [-2.0]}]
    with pytest.raises(BiomambaError, match="'my_cloze'.*one choice"):
        ensemble_results([_results(f"m{i}", "my_cloze", preds) for i in range(2)])
