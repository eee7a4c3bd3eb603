"""`render_report`: before/after tables with paired intervals, forgetting flag, per-language table, PNGs."""

from __future__ import annotations

import json

from biomamba.report import render_report
from biomamba.report.render import perplexity_changes


def _run(path, name, tasks, perplexity=None):
    data = {
        "format": "biomamba-results/1",
        "model": {"name": name},
        "protocol": {"name": "loglikelihood", "shots": 0},
        "tasks": {},
        "perplexity": perplexity or {},
    }
    for key, (domain, language, correct) in tasks.items():
        preds = [{"id": str(i), "correct": c} for i, c in enumerate(correct)]
        acc = sum(correct) / len(correct)
        data["tasks"][key] = {
            "task": key.split("@")[0],
            "language": language,
            "domain": domain,
            "n": len(correct),
            "prompt_hash": "abc",
            "metrics": {"acc": acc, "acc_ci": [acc - 0.05, acc + 0.05], "ece": 0.1},
            "predictions": preds,
        }
    path.write_text(json.dumps(data))
    return path


def _ppl(**domains: float) -> dict:
    return {domain: {"ppl": ppl} for domain, ppl in domains.items()}


def _three_tasks(pubmedqa: int, medqa_fr: int, arc_easy: int) -> dict:
    """A biomedical, a French biomedical and a general task, each with this many of 100 answers right."""

    def answers(right: int) -> list[float]:
        return [1.0] * right + [0.0] * (100 - right)

    return {
        "pubmedqa_test": ("biomedical", "en", answers(pubmedqa)),
        "medqa_4options@fr": ("biomedical", "fr", answers(medqa_fr)),
        "arc_easy": ("general", "en", answers(arc_easy)),
    }


def test_before_after_report(tmp_path):
    base = _run(tmp_path / "base.json", "base", _three_tasks(50, 30, 80), _ppl(pubmed=20.0))
    adapted = _run(tmp_path / "adapted.json", "adapted", _three_tasks(65, 35, 70), _ppl(pubmed=12.5))
    paths = render_report([base, adapted], tmp_path / "out")
    text = paths["markdown"].read_text()
    assert "### Biomedical benchmarks" in text and "### General benchmarks" in text
    assert "| pubmedqa_test | 100 | 50.0 [45.0, 55.0] | 65.0 [60.0, 70.0] | +15.0 [" in text
    arc_row = next(line for line in text.splitlines() if line.startswith("| arc_easy |"))
    assert "-10.0" in arc_row and "regression > 3 pts" in arc_row
    assert "## Per language" in text and "| base | medqa_4options | 30.0 | - |" in text.replace(
        "| - | 30.0 |", "| 30.0 | - |"
    )
    assert "| pubmed | 20.00 | 12.50 |" in text
    for chart in ("accuracy_chart", "perplexity_chart"):
        assert paths[chart].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_single_run_report(tmp_path):
    run = _run(tmp_path / "r.json", "m", {"arc_easy": ("general", "en", [1.0, 0.0])})
    text = render_report([run], tmp_path / "o")["markdown"].read_text()
    assert "Δ" not in text and "| arc_easy | 2 | 50.0" in text


def test_general_perplexity_rise_is_flagged_as_forgetting(tmp_path):
    before = _run(tmp_path / "b.json", "base", {}, _ppl(pubmed=10.0, c4=2.0, wikipedia=4.0))
    after = _run(tmp_path / "a.json", "cpt", {}, _ppl(pubmed=6.0, c4=2.1, wikipedia=4.04))
    changes = perplexity_changes(json.loads(before.read_text()), json.loads(after.read_text()))
    assert changes["c4"]["forgetting"] and not changes["c4"]["within_claim"]  # +5%
    assert changes["wikipedia"]["within_claim"] and not changes["wikipedia"]["forgetting"]  # +1%
    assert not changes["pubmed"]["general"] and not changes["pubmed"]["forgetting"]  # -40% is the point
    text = render_report([before, after], tmp_path / "out")["markdown"].read_text()
    assert "| c4 | 2.00 | 2.10 | +5.0% **forgetting > 3%** |" in text
    assert "| wikipedia | 4.00 | 4.04 | +1.0% |" in text and "| pubmed | 10.00 | 6.00 | -40.0% |" in text


def test_a_constant_answer_is_reported_as_degenerate_not_as_a_score(tmp_path):
    path = _run(tmp_path / "r.json", "m", {"pubmedqa": ("biomedical", "en", [1.0] * 6 + [0.0] * 4)})
    data = json.loads(path.read_text())
    for i, pred in enumerate(data["tasks"]["pubmedqa"]["predictions"]):
        pred.update(pred=0, pred_norm=i % 3)  # acc: always the first choice; acc_norm: varies
    path.write_text(json.dumps(data))
    text = render_report([path], tmp_path / "o")["markdown"].read_text()
    row = next(line for line in text.splitlines() if line.startswith("| pubmedqa | en |"))
    assert "degenerate: the same answer (choice 1) to all 10 questions" in row
    assert row.count("degenerate") == 1  # acc_norm's answers vary: it stays a number
