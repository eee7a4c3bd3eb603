"""`biomamba demo`: the whole BioMamba recipe, end to end, on a tiny Mamba2 and a synthetic corpus.

It calls exactly the stage APIs a real recipe uses (tokenizer training, corpus build, the trainer, the
evaluation suite); only the sizes are small. Steps:

1. write the synthetic corpus (biomamba.demo.synthetic) and train a small byte-level BPE on it;
2. build two corpora with the corpus stage: the general-only one (C4 + Wikipedia) and the 80/10/10
   PubMed/C4/Wikipedia mixture; both hold out the same documents per domain (split by a stable hash of the id);
3. pretrain a tiny Mamba2 "base" from scratch on the general corpus, then continue pretraining it on the mixture;
4. evaluate both on the held-out split of every domain (perplexity) and on the synthetic PubMedQA / MedQA
   questions (log-likelihood multiple choice, as lm-evaluation-harness scores it);
5. write `results.json`, `report.md` (the before/after table) and `curves.png` under the output directory.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
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
    started = time.perf_counter()

    say(f"[1/5] synthetic corpus and tokenizer -> {out}")
    sources, tokenizer_dir = _corpus_and_tokenizer(sections.get("tokenizer"), demo, out)

    say("[2/5] corpus build: general-only and the 80/10/10 mixture (token ratios, held-out split per domain)")
    corpora = _build_corpora(raw, demo, sources, tokenizer_dir, out, source, say)

    say("[3/5] pretraining the base model on general text, then continued pretraining on the mixture")
    runs = _train_phases(raw, demo, corpora, tokenizer_dir, out)

    say("[4/5] evaluation before and after continued pretraining")
    evaluations = {
        phase: _evaluate(runs[phase]["final_dir"], corpora["mixture"], sources, demo, out / "eval" / phase)
        for phase in ("base", "continued")
    }

    say("[5/5] report")
    results = _results(raw, demo, corpora, runs, evaluations, time.perf_counter() - started)
    write_json(out / "results.json", results)
    write_text(out / "report.md", render_markdown(results))
    plot_curves(runs, out / "curves.png")
    say(
        f"done in {results['seconds']:.0f} s: {out / 'report.md'}, {out / 'results.json'}, {out / 'curves.png'}"
    )
    return results


def _corpus_and_tokenizer(
    tok_cfg: TokenizerConfig | None, demo: DemoConfig, out: Path
) -> tuple[dict[str, Path], Path]:
    from biomamba.demo.synthetic import write_demo_corpus
    from biomamba.tokenizer import TokenizerConfig, train_tokenizer

    sources = write_demo_corpus(out / "sources", seed=demo.seed)
    tok_cfg = tok_cfg or TokenizerConfig()
    tokenizer_dir = out / "tokenizer"
    train_tokenizer(
        files=[str(sources[d]) for d in DOMAINS],
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
    general_cfg = mixture_cfg.model_copy(
        update={
            "sources": {d: mixture_cfg.sources[d] for d in demo.general_ratios},
            "ratios": dict(demo.general_ratios),
        }
    )
    general_cfg = DataConfig.model_validate(general_cfg.model_dump())
    corpora = {"general": out / "corpus" / "general", "mixture": out / "corpus" / "mixture"}
    build_corpus(general_cfg, str(tokenizer_dir), corpora["general"], progress=lambda m: say(f"    {m}"))
    build_corpus(mixture_cfg, str(tokenizer_dir), corpora["mixture"], progress=lambda m: say(f"    {m}"))
    return corpora


def _train_phases(
    raw: dict, demo: DemoConfig, corpora: dict[str, Path], tokenizer_dir: Path, out: Path
) -> dict:
    from biomamba.train import train

    base = train(
        raw,
        output_dir=out / "base",
        overrides={
            "train.corpus": str(corpora["general"]),
            "train.tokenizer": str(tokenizer_dir),
            "train.max_steps": demo.base.max_steps,
            "train.lr": demo.base.lr,
        },
    )
    continued_raw = copy.deepcopy(raw)
    continued_raw.pop("model", None)  # the continued phase starts from the base checkpoint instead
    continued_raw["train"].pop("architecture", None)
    continued = train(
        continued_raw,
        output_dir=out / "continued",
        overrides={
            "train.corpus": str(corpora["mixture"]),
            "train.base_model": str(base.final_dir),
            "train.max_steps": demo.continued.max_steps,
            "train.lr": demo.continued.lr,
        },
    )
    return {"base": base.to_json(), "continued": continued.to_json()}


def _evaluate(model_dir: str, corpus: Path, sources: dict[str, Path], demo: DemoConfig, out: Path) -> dict:
    from biomamba.eval import evaluate, perplexity, write_results
    from biomamba.models import load_model, load_tokenizer

    model = load_model(model_dir)
    tokenizer = load_tokenizer(model_dir)
    task_paths = {"pubmedqa": sources["pubmedqa"], "medqa_4options": sources["medqa"]}
    results = evaluate(
        model,
        tokenizer,
        [f"{task}={task_paths[task]}" for task in demo.mc_tasks],
        protocol="loglikelihood",
        model_name=str(model_dir),
    )
    results["perplexity"] = perplexity(model, corpus=corpus, seq_len=demo.eval_seq_len)
    write_results(out / "results.json", results)
    return results


def _results(
    raw: dict, demo: DemoConfig, corpora: dict[str, Path], runs: dict, evaluations: dict, seconds: float
) -> dict[str, Any]:
    from biomamba.data import read_manifest

    manifest = read_manifest(corpora["mixture"])
    rows = {}
    for domain in DOMAINS:
        before = evaluations["base"]["perplexity"][domain]["ppl"]
        after = evaluations["continued"]["perplexity"][domain]["ppl"]
        rows[domain] = {"before": before, "after": after, "change_pct": 100.0 * (after - before) / before}
    mc = {}
    for task in demo.mc_tasks:
        before = evaluations["base"]["tasks"][task]["metrics"]
        after = evaluations["continued"]["tasks"][task]["metrics"]
        balance = evaluations["base"]["tasks"][task].get("label_balance") or {}
        majority = max(balance.values()) / sum(balance.values()) if balance else None
        mc[task] = {"before": before, "after": after, "majority_baseline": majority}
    return {
        "format": "biomamba-demo-results/1",
        "recipe": raw.get("name", "demo"),
        "seconds": round(seconds, 1),
        "mixture": manifest.get("mixture", {}),
        "perplexity": rows,
        "multiple_choice": mc,
        "runs": runs,
        "evaluations": {phase: str(Path(r["final_dir"])) for phase, r in runs.items()},
    }


def render_markdown(results: dict[str, Any]) -> str:
    """The demo's before/after table, in the shape of BioMamba's perplexity table."""
    lines = [
        "# biomamba demo: continued pretraining of a tiny Mamba2 on a synthetic biomedical mixture",
        "",
        "SYNTHETIC DEMO DATA: the corpus and questions are generated by biomamba.demo.synthetic; the numbers show",
        "the pipeline working end to end, not anything about real biomedical text.",
        "",
        "## Held-out perplexity per domain (lower is better)",
        "",
        "| domain | base (general only) | after continued pretraining | change |",
        "|---|---:|---:|---:|",
    ]
    for domain, row in results["perplexity"].items():
        lines.append(f"| {domain} | {row['before']:.2f} | {row['after']:.2f} | {row['change_pct']:+.1f}% |")
    lines += [
        "",
        "## Multiple choice (log-likelihood scoring, 95% bootstrap interval)",
        "",
        "| task | majority answer | acc before | acc after | acc_norm before | acc_norm after |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for task, row in results["multiple_choice"].items():
        b, a = row["before"], row["after"]
        majority = row.get("majority_baseline")
        lines.append(
            f"| {task} | {'n/a' if majority is None else f'{100 * majority:.1f}'} | {_acc(b, 'acc')} | "
            f"{_acc(a, 'acc')} | {_acc(b, 'acc_norm')} | {_acc(a, 'acc_norm')} |"
        )
    summary = results.get("mixture", {}).get("summary")
    if summary:
        lines += ["", "## Training mixture", "", summary]
    lines += ["", f"Total time: {results['seconds']:.0f} s. Training curves: curves.png.", ""]
    return "\n".join(lines)


def _acc(metrics: dict[str, Any], key: str) -> str:
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
