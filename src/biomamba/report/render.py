"""`render_report`: results JSON files -> markdown tables (the papers' before/after tables) + PNG charts.

With one file: its scores. With several (e.g. base model, then adapted models): one column per model, and
for every later model the paired difference against the FIRST file with its 95% paired-bootstrap interval,
general benchmarks that lost more than 3 points flagged as forgetting. Tasks evaluated in several
languages get a per-language table. Bar charts carry the 95% intervals as error bars.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from biomamba.eval.results import compare_results, model_label, read_results
from biomamba.utils.atomic import atomic_write, write_text
from biomamba.utils.markdown import markdown_table

# BioMamba's claim: after continued pretraining, general-domain held-out perplexity stays within +/-3%.
PERPLEXITY_TOLERANCE = 0.03
GENERAL_PERPLEXITY_DOMAINS = ("c4", "wikipedia", "general")  # held-out domains that measure forgetting
PREDICTION_KEYS = {"acc": "pred", "acc_norm": "pred_norm"}  # the per-question prediction behind each metric


def perplexity_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per held-out domain: perplexity before and after, relative change, and the forgetting flag.

    `forgetting` is set on general domains whose perplexity rose by more than PERPLEXITY_TOLERANCE;
    `within_claim` says whether a general domain stayed within +/- that tolerance.
    """
    a, b = before.get("perplexity") or {}, after.get("perplexity") or {}
    out: dict[str, dict[str, Any]] = {}
    for domain in sorted(set(a) & set(b)):
        old, new = float(a[domain]["ppl"]), float(b[domain]["ppl"])
        change = (new - old) / old
        general = domain in GENERAL_PERPLEXITY_DOMAINS
        out[domain] = {
            "before": old,
            "after": new,
            "change": change,
            "general": general,
            "within_claim": bool(general and abs(change) <= PERPLEXITY_TOLERANCE),
            "forgetting": bool(general and change > PERPLEXITY_TOLERANCE),
        }
    return out


def degenerate_metric(
    task: dict[str, Any], metric: str = "acc", choices: list[str] | None = None
) -> str | None:
    """Why `metric` of a task says nothing about the model, or None when it does.

    A model that gives every question the same answer scores exactly that answer's share of the gold labels
    (e.g. acc_norm 0.0 when it always picks "maybe" and no gold answer is "maybe"); its interval is no
    interval either. Reported as such instead of as a number.
    """
    key = PREDICTION_KEYS.get(metric)
    preds = [p[key] for p in task.get("predictions", []) if key and key in p]
    if len(set(preds)) != 1:  # no predictions, or answers that vary
        return None
    choice, labels = preds[0], choices or []
    name = repr(labels[choice]) if 0 <= choice < len(labels) else f"choice {choice + 1}"
    return f"degenerate: the same answer ({name}) to all {len(preds)} questions"


def _task_cell(task: dict[str, Any], key: str = "acc") -> str:
    """A task's metric in percent with its interval (acc: and its seed spread), or why it is degenerate (a
    number that says nothing)."""
    metrics = task["metrics"]
    if degenerate := degenerate_metric(task, key):
        return degenerate
    if key not in metrics:
        return "-"
    low, high = metrics.get(f"{key}_ci", [float("nan"), float("nan")])
    text = f"{100 * metrics[key]:.1f} [{100 * low:.1f}, {100 * high:.1f}]"
    if key == "acc" and "acc_seed_std" in metrics:
        text += f" ±{100 * metrics['acc_seed_std']:.1f}"
    return text


def _labels(runs: list[dict[str, Any]]) -> list[str]:
    labels = [model_label(r) for r in runs]
    if len(set(labels)) < len(labels):  # same model name twice: tell the runs apart by file
        labels = [f"{label} ({Path(r['_path']).stem})" for label, r in zip(labels, runs, strict=True)]
    return labels


def _task_keys(runs: list[dict[str, Any]], domain: str) -> list[str]:
    """The keys of `domain`'s tasks in any run, in the order the runs first list them."""
    keys = (key for run in runs for key, task in run["tasks"].items() if task.get("domain") == domain)
    return list(dict.fromkeys(keys))


def _score_table(runs: list[dict[str, Any]], labels: list[str], domain: str) -> list[str]:
    keys = _task_keys(runs, domain)
    if not keys:
        return []
    comparisons = [compare_results(runs[0], run) for run in runs[1:]]
    header = ["task", "n"] + [f"{label} acc [95% CI]" for label in labels]
    header += [f"Δ {label} vs {labels[0]} [paired 95% CI]" for label in labels[1:]]
    rows = []
    for key in keys:
        n = next((str(r["tasks"][key]["n"]) for r in runs if key in r["tasks"]), "-")
        cells = [key, n] + [_task_cell(r["tasks"][key]) if key in r["tasks"] else "-" for r in runs]
        for comparison in comparisons:
            row = comparison.get(key)
            if row is None:
                cells.append("-")
                continue
            cell = f"{100 * row['diff']:+.1f} [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]"
            cells.append(cell + (" **regression > 3 pts**" if row["regression"] else ""))
        rows.append(cells)
    return [f"### {domain.capitalize()} benchmarks", "", *markdown_table(header, rows), ""]


def _detail_table(run: dict[str, Any], label: str) -> list[str]:
    protocol = run.get("protocol", {})
    head = "task | lang | n | acc [95% CI] | acc_norm [95% CI] | ECE | prompt hash".split(" | ")
    rows = [
        [t["task"], t["language"], t["n"], _task_cell(t), _task_cell(t, "acc_norm"),
         f"{t['metrics']['ece']:.3f}" if "ece" in t["metrics"] else "-", f"`{t['prompt_hash']}`"]
        for t in run["tasks"].values()
    ]  # fmt: skip
    protocol_line = (
        f"Protocol `{protocol.get('name')}`, {protocol.get('shots')}-shot, seeds {protocol.get('seeds')}, "
        f"backend {protocol.get('backend')}."
    )
    return [f"### {label}", "", protocol_line, "", *markdown_table(head, rows), ""]


def _language_table(runs: list[dict[str, Any]], labels: list[str]) -> list[str]:
    languages = sorted({t["language"] for r in runs for t in r["tasks"].values()})
    if len(languages) < 2:
        return []
    tasks = sorted({t["task"] for r in runs for t in r["tasks"].values()})
    rows = []
    for run, label in zip(runs, labels, strict=True):
        by = {(t["task"], t["language"]): t for t in run["tasks"].values()}
        for task in tasks:
            cells = [
                f"{100 * by[(task, lang)]['metrics']['acc']:.1f}" if (task, lang) in by else "-"
                for lang in languages
            ]
            rows.append([label, task, *cells])
    return ["## Per language", "", *markdown_table(["model", "task", *languages], rows), ""]


def _perplexity_table(runs: list[dict[str, Any]], labels: list[str]) -> list[str]:
    domains = sorted({d for r in runs for d in (r.get("perplexity") or {})})
    if not domains:
        return []
    changes = [perplexity_changes(runs[0], run) for run in runs[1:]]
    head = ["domain", *labels, *(f"change {label} vs {labels[0]}" for label in labels[1:])]
    rows = []
    for domain in domains:
        cells = [
            f"{r['perplexity'][domain]['ppl']:.2f}" if domain in (r.get("perplexity") or {}) else "-"
            for r in runs
        ]
        for change in changes:
            row = change.get(domain)
            flag = " **forgetting > 3%**" if row and row["forgetting"] else ""
            cells.append(f"{100 * row['change']:+.1f}%{flag}" if row else "-")
        rows.append([domain, *cells])
    lines = ["## Held-out perplexity (token-weighted; lower is better)", "", *markdown_table(head, rows)]
    if changes:
        lines += [
            "",
            f"General domains ({', '.join(GENERAL_PERPLEXITY_DOMAINS)}) rising by more than "
            f"{100 * PERPLEXITY_TOLERANCE:.0f}% are flagged as forgetting (BioMamba's claim: within "
            f"+/-{100 * PERPLEXITY_TOLERANCE:.0f}%).",
        ]
    return [*lines, ""]


def _bar_chart(path: Path, runs: list[dict[str, Any]], labels: list[str]) -> None:
    """Accuracy per task (biomedical, then general): one bar per run, its 95% interval as error bars."""
    keys = [k for d in ("biomedical", "general") for k in _task_keys(runs, d)]
    bars = []
    for run, label in zip(runs, labels, strict=True):
        metrics = [run["tasks"].get(key, {}).get("metrics", {}) for key in keys]
        acc = [m.get("acc", math.nan) for m in metrics]
        ci = [m.get("acc_ci", [a, a]) for m, a in zip(metrics, acc, strict=True)]
        below = [100 * (a - low) for a, (low, _) in zip(acc, ci, strict=True)]
        above = [100 * (high - a) for a, (_, high) in zip(acc, ci, strict=True)]
        bars.append((label, [100 * a for a in acc], [below, above]))
    size = (max(6.0, 1.2 * len(keys) * len(runs) ** 0.5), 4.0)
    ticks = {"rotation": 30, "ha": "right"}
    _save_bars(path, keys, bars, size, ticks, ylabel="accuracy (%) with 95% CI", ylim=(0, 100))


def _perplexity_chart(path: Path, runs: list[dict[str, Any]], labels: list[str]) -> None:
    """Held-out perplexity per domain: one bar per run."""
    domains = sorted({d for r in runs for d in (r.get("perplexity") or {})})
    bars = [
        (label, [(run.get("perplexity") or {}).get(d, {}).get("ppl", math.nan) for d in domains], None)
        for run, label in zip(runs, labels, strict=True)
    ]
    _save_bars(path, domains, bars, (max(5.0, 1.5 * len(domains)), 3.5), {}, ylabel="perplexity")


def _save_bars(
    path: Path, groups: list[str], bars: list[tuple], size: tuple[float, float], ticks: dict, **axes: Any
) -> None:
    """The one chart writer: a PNG, saved atomically, with a group of bars per x label (`ticks` styles the
    labels) holding one bar per (label, heights, [lengths below, lengths above] of its error bars, or None)
    of `bars`; `axes` sets the axes' properties (ylabel, ylim)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    width = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=size)
    x = np.arange(len(groups))
    for i, (label, heights, errors) in enumerate(bars):
        ax.bar(x + i * width - 0.4 + width / 2, heights, width, yerr=errors, capsize=3, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, **ticks)
    ax.set(**axes)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)


def render_report(results_files: list[str | Path], output_dir: str | Path) -> dict[str, Path]:
    """Write `report.md`, `accuracy.png` (and `perplexity.png`) into `output_dir`; return their paths.

    The first results file is the reference ("before") that later ones are compared against.
    """
    if not results_files:
        raise ValueError("render_report needs at least one results file")
    runs = [read_results(path) for path in results_files]
    labels = _labels(runs)
    out = Path(output_dir)  # created by the atomic writers, like any missing parent
    paths: dict[str, Path] = {}
    lines = ["# Evaluation report", "", "Models: " + ", ".join(f"`{label}`" for label in labels), ""]
    if len(runs) > 1:
        lines += [
            f"Differences are against `{labels[0]}` on the questions both runs share (paired bootstrap).",
            "",
        ]
    lines += ["## Accuracy", ""]
    lines += _score_table(runs, labels, "biomedical") + _score_table(runs, labels, "general")
    if any(r["tasks"] for r in runs):
        _bar_chart(out / "accuracy.png", runs, labels)
        paths["accuracy_chart"] = out / "accuracy.png"
        lines += ["![accuracy with 95% intervals](accuracy.png)", ""]
    lines += _language_table(runs, labels) + _perplexity_table(runs, labels)
    if any(r.get("perplexity") for r in runs):
        _perplexity_chart(out / "perplexity.png", runs, labels)
        paths["perplexity_chart"] = out / "perplexity.png"
        lines += ["![perplexity](perplexity.png)", ""]
    lines += ["## Details per run", ""]
    for run, label in zip(runs, labels, strict=True):
        lines += _detail_table(run, label)
    write_text(out / "report.md", "\n".join(lines))
    paths["markdown"] = out / "report.md"
    return paths
