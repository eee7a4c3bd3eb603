"""`biomamba demo`: the whole BioMamba recipe, end to end, on a tiny Mamba2 and a synthetic corpus.

It calls exactly the stage APIs a real recipe uses (tokenizer training, corpus build, the trainer, the
evaluation suite); only the sizes are small. Steps:

1. write the synthetic corpus (biomamba.demo.synthetic) and train a small byte-level BPE on it;
2. build two corpora with the corpus stage: the base model's (general text with some PubMed-style text, as
   the Pile has: mostly another world's facts, biomamba.demo.synthetic says why) and the 80/10/10
   PubMed/C4/Wikipedia mixture; each holds out documents per domain by a stable hash of the id, and both models
   are evaluated on the mixture's held-out split;
3. pretrain a tiny Mamba2 "base" from scratch on the base corpus, then continue pretraining it on the mixture;
4. evaluate both on the held-out split of every domain (perplexity) and on the synthetic PubMedQA / MedQA
   questions (log-likelihood multiple choice, as lm-evaluation-harness scores it);
5. write `results.json`, `report.md` (a three-line summary, then the before/after tables) and `curves.png` under
   the output directory, and print the time each stage took.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biomamba.config import load_recipe_dict, load_section, merge_overrides, validate_recipe
from biomamba.demo.config import DemoConfig
from biomamba.utils.atomic import write_json, write_text

DOMAINS = ("pubmed", "c4", "wikipedia")
DOMAIN_COLORS = {"pubmed": "tab:green", "c4": "tab:blue", "wikipedia": "tab:orange"}
Say = Callable[[str], None]

if TYPE_CHECKING:
    from biomamba.tokenizer import TokenizerConfig


def run_demo(
    recipe: str | Path = "recipes/demo.yaml",
    *,
    output_dir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    say: Say = print,
) -> dict[str, Any]:
    """Run the demo recipe; return the results dict that is also written to `results.json`."""
    source = str(recipe)
    raw = merge_overrides(load_recipe_dict(recipe), overrides or {})
    sections = validate_recipe(raw, source)  # every section, before anything is written
    demo = sections.get("demo") or DemoConfig()
    out = Path(output_dir or raw.get("output_dir") or "runs/demo")
    clock = _StageClock()
    with _torch_threads(demo.threads) as threads:
        say(f"[1/5] synthetic corpus and tokenizer -> {out}")
        with clock("corpus and tokenizer"):
            sources, tokenizer_dir = _corpus_and_tokenizer(sections.get("tokenizer"), demo, out)

        say(
            "[2/5] corpus build: the base model's corpus and the 80/10/10 mixture (held-out split per domain)"
        )
        with clock("corpus build"):
            corpora = _build_corpora(raw, demo, sources, tokenizer_dir, out, source, say)

        say(
            "[3/5] pretraining the base model (mostly general text), then continued pretraining on the mixture"
        )
        runs = _train_phases(raw, demo, corpora, tokenizer_dir, out, clock)

        say("[4/5] evaluation before and after continued pretraining")
        with clock("evaluation"):
            evaluations = {
                phase: _evaluate(
                    runs[phase]["final_dir"], corpora["mixture"], sources, demo, out / "eval" / phase
                )
                for phase in ("base", "continued")
            }

        say("[5/5] report")
        with clock("report"):
            results = _results(raw, demo, corpora, runs, evaluations)
            plot_curves(runs, out / "curves.png")
    results["stage_seconds"] = clock.seconds
    results["torch_threads"] = threads
    results["seconds"] = round(sum(clock.seconds.values()), 1)
    results["summary"][-1] += f"; the demo took {results['seconds']:.0f} s."
    write_json(out / "results.json", results)
    write_text(out / "report.md", render_markdown(results))
    for line in results["summary"]:
        say(line)
    say("stage timings: " + ", ".join(f"{name} {sec:.0f} s" for name, sec in clock.seconds.items()))
    say(
        f"done in {results['seconds']:.0f} s: {out / 'report.md'}, {out / 'results.json'}, {out / 'curves.png'}"
    )
    return results


class _StageClock:
    """Wall-clock seconds per demo stage, in the order they ran (printed at the end and kept in results)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 1)


PASSIVE_WAIT = ("OMP_WAIT_POLICY", "PASSIVE")  # OpenMP's idle threads sleep instead of spinning


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[int]:
    """Run with `threads` torch CPU threads, restoring the caller's setting afterwards.

    More than one only under PASSIVE_WAIT (DemoConfig.threads says why); OpenMP reads the policy once, when
    torch loads, so `biomamba demo` sets it first and a caller of `run_demo` sets it in the environment.
    """
    import torch

    previous = torch.get_num_threads()
    name, policy = PASSIVE_WAIT
    if threads and threads > 1 and os.environ.get(name, "").upper() != policy:
        threads = 1
    if threads:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def _corpus_and_tokenizer(
    tok_cfg: TokenizerConfig | None, demo: DemoConfig, out: Path
) -> tuple[dict[str, Path], Path]:
    from biomamba.demo.synthetic import TEXT_FILES, write_demo_corpus
    from biomamba.tokenizer import TokenizerConfig, train_tokenizer

    sources = write_demo_corpus(out / "sources", seed=demo.seed)
    tok_cfg = tok_cfg or TokenizerConfig()
    tokenizer_dir = out / "tokenizer"
    train_tokenizer(
        files=[str(sources[name]) for name in TEXT_FILES],
        vocab_size=tok_cfg.vocab_size,
        output_dir=tokenizer_dir,
        min_frequency=tok_cfg.min_frequency,
    )
    return sources, tokenizer_dir


def _build_corpora(
    raw: dict,
    demo: DemoConfig,
    sources: dict[str, Path],
    tokenizer_dir: Path,
    out: Path,
    source: str,
    say: Say,
) -> dict[str, Path]:
    from biomamba.data import DataConfig, build_corpus

    mixture_raw = merge_overrides(
        raw, {f"data.sources.{d}": [{"type": "jsonl", "path": str(sources[d])}] for d in DOMAINS}
    )
    mixture_cfg = load_section(mixture_raw, "data", DataConfig, source)
    base_sources = {d: mixture_cfg.sources[d] for d in demo.base_ratios}
    if "pubmed" in base_sources:  # the base's PubMed-style text states the background world, not the demo's
        base_sources["pubmed"] = [
            spec.model_copy(update={"path": str(sources["pubmed_background"])})
            for spec in mixture_cfg.sources["pubmed"]
        ]
    base_cfg = mixture_cfg.model_copy(update={"sources": base_sources, "ratios": dict(demo.base_ratios)})
    base_cfg = DataConfig.model_validate(base_cfg.model_dump())
    corpora = {"base": out / "corpus" / "base", "mixture": out / "corpus" / "mixture"}
    build_corpus(base_cfg, str(tokenizer_dir), corpora["base"], progress=lambda m: say(f"    {m}"))
    build_corpus(mixture_cfg, str(tokenizer_dir), corpora["mixture"], progress=lambda m: say(f"    {m}"))
    return corpora


def _train_phases(
    raw: dict, demo: DemoConfig, corpora: dict[str, Path], tokenizer_dir: Path, out: Path, clock: _StageClock
) -> dict:
    from biomamba.train import train

    with clock("base pretraining"):
        base = train(
            raw,
            output_dir=out / "base",
            overrides={
                "train.corpus": str(corpora["base"]),
                "train.tokenizer": str(tokenizer_dir),
                "train.max_steps": demo.base.max_steps,
                "train.lr": demo.base.lr,
            },
        )
    from biomamba.models.config import RUNTIME_FIELDS

    continued_raw = copy.deepcopy(raw)
    continued_raw["train"].pop("architecture", None)
    # the continued phase starts from the base checkpoint, run as the recipe's model: section says
    runtime = {k: v for k, v in (continued_raw.pop("model", None) or {}).items() if k in RUNTIME_FIELDS}
    continued_raw["model"] = {"name_or_path": str(base.final_dir), **runtime}
    with clock("continued pretraining"):
        continued = train(
            continued_raw,
            output_dir=out / "continued",
            overrides={
                "train.corpus": str(corpora["mixture"]),
                "train.tokenizer": str(tokenizer_dir),
                "train.max_steps": demo.continued.max_steps,
                "train.lr": demo.continued.lr,
            },
        )
    return {"base": base.to_json(), "continued": continued.to_json()}


def _evaluate(model_dir: str, corpus: Path, sources: dict[str, Path], demo: DemoConfig, out: Path) -> dict:
    from biomamba.eval import run_eval, write_results
    from biomamba.eval.config import EvalConfig
    from biomamba.eval.tasks import load_questions, parse_task_file

    task_paths = {"pubmedqa": sources["pubmedqa"], "medqa_4options": sources["medqa"]}
    config = EvalConfig(
        model=str(model_dir),
        task_files={task: str(task_paths[task]) for task in demo.mc_tasks},
        perplexity={"corpus": str(corpus), "seq_len": demo.eval_seq_len},
    )
    results = run_eval(config)
    for task in demo.mc_tasks:  # the choice strings, so a degenerate metric names the answer it is stuck on
        questions = load_questions(parse_task_file(f"{task}={task_paths[task]}"), limit=1)
        results["tasks"][task]["choices"] = questions[0].choices
    write_results(out / "results.json", results)
    return results


def _results(
    raw: dict, demo: DemoConfig, corpora: dict[str, Path], runs: dict, evaluations: dict
) -> dict[str, Any]:
    from biomamba.data import read_manifest
    from biomamba.report.render import perplexity_changes

    before, after = evaluations["base"], evaluations["continued"]
    perplexity = perplexity_changes(before, after)
    results = {
        "format": "biomamba-demo-results/2",
        "recipe": raw.get("name", "demo"),
        "demo": demo.model_dump(),  # the settings this run used (recipe over DemoConfig's defaults)
        "base_mixture": dict(demo.base_ratios),
        "mixture": read_manifest(corpora["mixture"]).get("mixture", {}),
        "parameters": before["model"]["parameters"],
        "perplexity": perplexity,
        "general_claim": _general_claim(perplexity),
        "multiple_choice": {task: _mc_row(before, after, task) for task in demo.mc_tasks},
        "runs": runs,
        "evaluations": {phase: str(Path(r["final_dir"])) for phase, r in runs.items()},
    }
    results["summary"] = _summary(results)
    return results


def _general_claim(perplexity: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """BioMamba's claim, checked: did every general domain's perplexity stay within the tolerance?"""
    from biomamba.report.render import PERPLEXITY_TOLERANCE

    general = {d: row for d, row in perplexity.items() if row["general"]}
    return {
        "tolerance": PERPLEXITY_TOLERANCE,
        "within": all(row["within_claim"] for row in general.values()),
        "forgetting": sorted(d for d, row in general.items() if row["forgetting"]),
        "improved": sorted(d for d, row in general.items() if row["change"] < -PERPLEXITY_TOLERANCE),
    }


def _mc_row(before: dict, after: dict, task: str) -> dict[str, Any]:
    """Before/after scores of one task on the same questions, their paired difference, degenerate metrics."""
    from biomamba.eval.results import compare_results
    from biomamba.report.render import degenerate_metric

    b, a = before["tasks"][task], after["tasks"][task]
    balance = b.get("label_balance") or {}
    choices = b.get("choices")
    return {
        "n": b["n"],
        "before": b["metrics"],
        "after": a["metrics"],
        "majority_baseline": max(balance.values()) / sum(balance.values()) if balance else None,
        "paired": compare_results(before, after)[task],
        "degenerate": {
            phase: {m: degenerate_metric(t, m, choices) for m in ("acc", "acc_norm") if m in t["metrics"]}
            for phase, t in (("before", b), ("after", a))
        },
    }


def _summary(results: dict[str, Any]) -> list[str]:
    """Three lines a newcomer reads first: what was trained, what improved, what it cost."""
    runs, ppl, claim = results["runs"], results["perplexity"], results["general_claim"]
    pubmed_share = 100 * results["base_mixture"].get("pubmed", 0.0)
    trained = (
        f"Trained: a {results['parameters'] / 1e6:.1f}M-parameter Mamba2, pretrained {runs['base']['steps']} steps "
        f"on general text with {pubmed_share:.0f}% PubMed-style documents, then {runs['continued']['steps']} steps "
        "of continued pretraining on the 80/10/10 PubMed/C4/Wikipedia mixture (synthetic data)."
    )
    gains, losses = [], []
    if "pubmed" in ppl:
        row = ppl["pubmed"]
        text = f"PubMed perplexity {row['before']:.2f} -> {row['after']:.2f} ({100 * row['change']:+.1f}%)"
        (gains if row["change"] < 0 else losses).append(text)
    for task, row in results["multiple_choice"].items():
        paired = row["paired"]
        text = (
            f"{task} acc {100 * paired['before']:.1f} -> {100 * paired['after']:.1f} "
            f"(paired diff {100 * paired['diff']:+.1f} [{100 * paired['low']:+.1f}, {100 * paired['high']:+.1f}])"
        )
        for phase, metrics in row["degenerate"].items():  # which model, under which metric
            stuck = [metric for metric, reason in metrics.items() if reason]
            if stuck:
                text += f", {'/'.join(stuck)} {phase} degenerate (the same answer to every question)"
        (gains if paired["low"] > 0 else losses).append(text)  # a gain only when its interval excludes 0
    general = ", ".join(f"{d} {100 * r['change']:+.1f}%" for d, r in ppl.items() if r["general"])
    tolerance = 100 * claim["tolerance"]
    if claim["within"]:
        verdict = f"within BioMamba's +/-{tolerance:.0f}% claim"
    elif claim["forgetting"]:
        verdict = f"forgetting: {', '.join(claim['forgetting'])} rose by more than {tolerance:.0f}%"
    else:
        verdict = f"better than the +/-{tolerance:.0f}% claim (general text fell too)"
    cost = f"Cost: general perplexity {general} ({verdict})"
    if losses:
        cost += "; no gain: " + "; ".join(losses)
    return [trained, "Improved: " + ("; ".join(gains) or "nothing") + ".", cost]


def render_markdown(results: dict[str, Any]) -> str:
    """The demo's report: the three-line summary, then BioMamba's perplexity table and the MC table."""
    lines = [
        "# biomamba demo: continued pretraining of a tiny Mamba2 on a synthetic biomedical mixture",
        "",
        *[f"- {line}" for line in results["summary"]],
        "",
        "SYNTHETIC DEMO DATA: the corpus and questions are generated by biomamba.demo.synthetic; the numbers show",
        "the pipeline working end to end, not anything about real biomedical text.",
        "",
        "## Held-out perplexity per domain (lower is better)",
        "",
        "| domain | base | after continued pretraining | change | BioMamba's claim (general: within +/-3%) |",
        "|---|---:|---:|---:|---|",
    ]
    for domain, row in results["perplexity"].items():
        claim = (
            "-"
            if not row["general"]
            else (
                "within" if row["within_claim"] else ("**forgetting**" if row["forgetting"] else "improved")
            )
        )
        lines.append(
            f"| {domain} | {row['before']:.2f} | {row['after']:.2f} | {100 * row['change']:+.1f}% | {claim} |"
        )
    lines += [
        "",
        "## Multiple choice (lm-eval log-likelihood protocol, 95% bootstrap intervals; same questions before/after)",
        "",
        "| task | n | majority answer | acc before | acc after | paired diff | acc_norm before | acc_norm after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task, row in results["multiple_choice"].items():
        majority = row.get("majority_baseline")
        paired = row["paired"]
        cells = [
            task,
            str(row["n"]),
            "n/a" if majority is None else f"{100 * majority:.1f}",
            _acc(row, "before", "acc"),
            _acc(row, "after", "acc"),
            f"{100 * paired['diff']:+.1f} [{100 * paired['low']:+.1f}, {100 * paired['high']:+.1f}]",
            _acc(row, "before", "acc_norm"),
            _acc(row, "after", "acc_norm"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    summary = results.get("mixture", {}).get("summary")
    if summary:
        lines += ["", "## Training mixture", "", summary]
    timings = ", ".join(f"{name} {sec:.0f} s" for name, sec in results.get("stage_seconds", {}).items())
    lines += ["", f"Total time: {results['seconds']:.0f} s ({timings}). Training curves: curves.png.", ""]
    return "\n".join(lines)


def _acc(row: dict[str, Any], phase: str, key: str) -> str:
    """One metric with its interval, or the reason it is degenerate (never a bare 0.0 [0.0, 0.0])."""
    reason = row.get("degenerate", {}).get(phase, {}).get(key)
    if reason:
        return reason
    metrics = row[phase]
    value = metrics.get(key)
    if value is None:
        return "n/a"
    interval = metrics.get(f"{key}_ci")
    if interval:
        return f"{100 * value:.1f} [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"
    return f"{100 * value:.1f}"


def plot_curves(runs: dict, path: Path) -> None:
    """Training loss and held-out perplexity over the two phases, one continuous step axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from biomamba.utils.atomic import atomic_write

    fig, (ax_loss, ax_ppl) = plt.subplots(1, 2, figsize=(11, 4))
    offset = 0
    for phase in ("base", "continued"):
        records = _metrics(Path(runs[phase]["run_dir"]) / "metrics.jsonl")
        train = [(offset + r["step"], r["loss"]) for r in records if "loss" in r and "step" in r]
        if train:
            ax_loss.plot(*zip(*train, strict=True), label=phase)
        for domain in DOMAINS:
            key = f"heldout/{domain}/ppl"
            points = [(offset + r["step"], r[key]) for r in records if key in r]
            if points:  # one colour per domain, one line style per phase
                ax_ppl.plot(
                    *zip(*points, strict=True),
                    marker="o",
                    color=DOMAIN_COLORS[domain],
                    linestyle="-" if phase == "continued" else "--",
                    label=f"{domain} ({phase})",
                )
        offset += int(runs[phase]["steps"])
    ax_loss.set(title="training loss", xlabel="step", ylabel="loss")
    for ax in (ax_loss, ax_ppl):
        ax.axvline(int(runs["base"]["steps"]), color="grey", linewidth=0.8)  # continued pretraining starts
    ax_ppl.set(title="held-out perplexity", xlabel="step", ylabel="perplexity", yscale="log")
    ax_loss.legend()
    ax_ppl.legend(fontsize=7)
    fig.tight_layout()
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


def _metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
