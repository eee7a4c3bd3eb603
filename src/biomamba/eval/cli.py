"""CLI of the eval stage: `biomamba eval run|tasks|inspect|perplexity|translate|compare`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

from biomamba.config import load_section, load_stage_config
from biomamba.config.command_line import PRECEDENCE, command_group, parse_named_values, set_option
from biomamba.errors import BiomambaError

HELP = "Evaluate models: domain perplexity, biomedical and general benchmarks, comparisons."

RUN_HELP = """Score MODEL (a model directory or hub name) on benchmark files in their ORIGINAL formats.

Give each task its file with --task-file NAME=PATH (repeatable; NAME@LANG=PATH or a file named *.LANG.EXT
for a translated copy, reported per language; NAME=hub:DATASET[:CONFIG[:SPLIT]] for a hub copy, read when
online). --tasks limits which of them run (NAME: every language, NAME@LANG: that copy). Protocols: `loglikelihood` (lm-eval's acc and
acc_norm; default 0-shot), `letter` (BioMistral: next-token answer letter, default 3 shots x 3 seeds),
`generate` (greedy answer + extraction). Every accuracy gets a 95% bootstrap interval; the results JSON
(per-question predictions, prompt hashes) feeds `biomamba eval compare` and `biomamba report`. It is
rewritten after every task; rerun with the same --output and the tasks it already holds for the same model,
tokenizer, settings and file contents are kept, not rerun.

Example:
  biomamba eval run runs/x/final --task-file pubmedqa_test=../shared/data/pubmedqa \\
      --task-file mmlu_anatomy=mmlu/anatomy_test.csv --protocol letter --output runs/x/eval.json"""


def _print_table(title: str, columns: Iterable[str], rows: Iterable[Iterable[str]]) -> None:
    """A rich table on stdout (imported here, so that `biomamba --help` does not pay for rich's tables)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def _task_row(task: dict[str, Any]) -> list[str]:
    """One task of a results file: its accuracy with interval (and seed spread), acc_norm, ECE and speed."""
    m = task["metrics"]
    ci = m.get("acc_ci", [float("nan")] * 2)
    acc = f"{m['acc']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    if "acc_seed_std" in m:
        acc += f" ±{m['acc_seed_std']:.3f}"
    norm = f"{m['acc_norm']:.3f}" if "acc_norm" in m else "-"
    ece = f"{m['ece']:.3f}" if "ece" in m else "-"
    return [task["task"], task["language"], str(task["n"]), acc, norm, ece, f"{task['questions_per_s']:.1f}"]


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    eval_app = command_group(app, "eval", HELP)

    @eval_app.command("run", help=RUN_HELP, epilog=PRECEDENCE)
    def run(
        model: str = typer.Argument(None, help="Model directory or hub name (or eval.model in the recipe)."),
        tasks: str = typer.Option(
            None, help="Comma-separated task names to run (default: every --task-file)."
        ),
        task_file: list[str] = typer.Option(
            None,
            help="NAME=PATH, NAME@LANG=PATH or NAME=hub:DATASET[:CONFIG[:SPLIT]] (repeatable).",
        ),
        fewshot_file: list[str] = typer.Option(None, help="NAME=PATH to draw shots from."),
        protocol: str = typer.Option(None, help="loglikelihood | letter | generate."),
        shots: int = typer.Option(None, help="k-shot (default: 0 for loglikelihood/generate, 3 for letter)."),
        seeds: int = typer.Option(None, help="Number of shot draws (seeds) when shots > 0 (default 3)."),
        batch_size: int = typer.Option(None, help="Questions per forward pass (default 16)."),
        limit: int = typer.Option(
            None,
            help="Score N questions per task, a sample stratified by label, drawn with eval.seed (smoke runs).",
        ),
        backend: str = typer.Option(None, help="auto | kv | mamba2 | full (full = no prefix sharing)."),
        device: str = typer.Option(None, help="cpu, cuda, cuda:1 ..."),
        dtype: str = typer.Option(None, help="float32, bfloat16, float16 (default: as stored)."),
        output: Path = typer.Option(None, help="Results JSON (default runs/eval/<model>/results.json)."),
        recipe: Path = typer.Option(None, help="Recipe YAML with an `eval:` section; flags win."),
        set_: list[str] = set_option("eval.seeds=5"),
    ) -> None:
        from biomamba.eval.config import EvalConfig
        from biomamba.eval.runner import run_eval

        flags = {
            "eval.model": model,
            "eval.protocol": protocol,
            "eval.shots": shots,
            "eval.seeds": seeds,
            "eval.batch_size": batch_size,
            "eval.limit": limit,
            "eval.backend": backend,
            "eval.device": device,
            "eval.dtype": dtype,
            "eval.output": str(output) if output else None,
            "eval.tasks": [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None,
        }
        cfg, _ = load_stage_config(recipe, "eval", EvalConfig, flags, set_)
        cfg.fewshot_files = {**cfg.fewshot_files, **parse_named_values(fewshot_file, "--fewshot-file")}
        if cfg.model and not cfg.output:
            cfg.output = str(Path("runs/eval") / Path(cfg.model).name / "results.json")

        def progress(key: str, done: int, total: int) -> None:
            typer.echo(f"{key}: {done}/{total}", err=True)

        results = run_eval(cfg, task_files=task_file or (), progress=progress)
        protocol = results["protocol"]
        title = f"{results['model']['name']} ({protocol['name']}, {protocol['shots']}-shot)"
        columns = ("task", "lang", "n", "acc [95% CI]", "acc_norm", "ECE", "q/s")
        _print_table(title, columns, map(_task_row, results["tasks"].values()))
        typer.echo(f"results: {cfg.output}")

    @eval_app.command("tasks", help="List the benchmark tasks, their domain and the file format each reads.")
    def list_tasks() -> None:
        from biomamba.eval.tasks import TASKS

        title = "biomamba eval tasks (give files with --task-file NAME=PATH)"
        rows = ([spec.name, spec.domain, spec.summary, ", ".join(spec.formats)] for spec in TASKS.values())
        _print_table(title, ("task", "domain", "reads", "formats"), rows)

    @eval_app.command("inspect")
    def inspect(
        spec: str = typer.Argument(..., help="NAME=PATH, e.g. pubmedqa_test=../shared/data/pubmedqa"),
    ) -> None:
        """Load a task file, check every record, print its size and label balance."""
        from biomamba.eval.tasks import label_balance, load_questions, parse_task_file

        task_file = parse_task_file(spec)
        questions = load_questions(task_file)
        balance = label_balance(questions)
        typer.echo(f"{task_file.task} ({task_file.language}) {task_file.path}: {len(questions)} questions")
        typer.echo("labels: " + ", ".join(f"{k} {v}" for k, v in balance.items()))
        typer.echo(f"format: {questions.format}; files: {questions.files_summary()}")
        if questions.skipped:
            typer.echo(f"skipped: {questions.skipped_summary()}")

    @eval_app.command("perplexity", help="Perplexity per domain on held-out shards (--corpus) or text files.")
    def perplexity_cmd(
        model: str = typer.Argument(..., help="Model directory or hub name."),
        corpus: Path = typer.Option(None, help="Corpus directory: every heldout/<domain> split is measured."),
        text: list[str] = typer.Option(None, help="Plain-text file, or DOMAIN=FILE (repeatable)."),
        domain: list[str] = typer.Option(None, help="Only these held-out domains."),
        seq_len: int = typer.Option(1024, help="Window length in tokens."),
        stride: int = typer.Option(None, help="Sliding-window stride (default seq_len: no overlap)."),
        batch_size: int = typer.Option(8, help="Windows per forward."),
        max_tokens: int = typer.Option(None, help="Read at most this many tokens per domain."),
        device: str = typer.Option("cpu", help="cpu, cuda ..."),
        output: Path = typer.Option(None, help="Also write the numbers as JSON here."),
    ) -> None:
        from biomamba.eval.config import EvalConfig
        from biomamba.eval.runner import run_eval
        from biomamba.utils.atomic import write_json

        texts = parse_named_values(text, "--text", bare_name=lambda path: Path(path).stem)
        if corpus is None and not texts:
            raise BiomambaError("give --corpus DIR or --text FILE")
        ppl = {"corpus": corpus and str(corpus), "texts": texts, "domains": domain or None, "seq_len": seq_len,
               "stride": stride, "batch_size": batch_size, "max_tokens": max_tokens}  # fmt: skip
        section = {"model": model, "device": device, "perplexity": ppl}
        result = run_eval(load_section({"eval": section}, "eval", EvalConfig, "flags"))["perplexity"]
        for name, stats in result.items():
            typer.echo(
                f"{name}: ppl {stats['ppl']:.3f}  (bits/token {stats['bits_per_token']:.3f}, {stats['tokens']} tokens; "
                f"mean-of-batch-means variant {stats['ppl_batch_mean_variant']:.3f})"
            )
        if output:
            write_json(output, {"model": model, "perplexity": result})

    @eval_app.command("translate", help="Machine-translate a task file with a local translation model.")
    def translate_cmd(
        task: str = typer.Argument(..., help="Task whose format the file has, e.g. medqa_4options."),
        source: Path = typer.Argument(..., help="The task file to translate."),
        to: str = typer.Option(..., help="Target language code: fr, de, es, pt, ru, zh, ar ..."),
        model: str = typer.Option(..., help="Local translation model directory (seq2seq or causal LM)."),
        output: Path = typer.Option(None, help="Output file (default: NAME.<lang>.EXT beside the source)."),
        cache: Path = typer.Option(None, help="Translation cache (default: <output>.cache.jsonl)."),
        source_language: str = typer.Option("en", "--from", help="Source language code."),
        target_token: str = typer.Option(
            None, help="Target-language token for multilingual models (fra_Latn)."
        ),
        batch_size: int = typer.Option(8, help="Texts per generate call."),
        max_new_tokens: int = typer.Option(256, help="Longest translation in tokens."),
        device: str = typer.Option("cpu", help="cpu, cuda ..."),
    ) -> None:
        from biomamba.eval.tasks import get_task
        from biomamba.eval.translate import Translator, default_output, translate_task_file

        get_task(task)
        target = output or default_output(source, to)
        translator = Translator(
            model,
            to,
            source=source_language,
            cache_path=cache or target.with_name(target.name + ".cache.jsonl"),
            target_token=target_token,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            device=device,
        )
        stats = translate_task_file(task, source, target, translator)
        typer.echo(
            f"{target}: {stats['records']} records, {stats['texts']} texts, {stats['model_calls']} sent to the model "
            "(the rest from the cache)"
        )

    @eval_app.command("compare")
    def compare(
        before: Path = typer.Argument(..., help="Results JSON of the base model."),
        after: Path = typer.Argument(..., help="Results JSON of the adapted model."),
        resamples: int = typer.Option(1000, help="Bootstrap resamples."),
        output: Path = typer.Option(None, help="Also write the comparison as JSON here."),
    ) -> None:
        """Paired comparison of two results files (BEFORE, AFTER) on shared questions."""
        from biomamba.eval.results import compare_results, model_label, read_results
        from biomamba.utils.atomic import write_json

        a, b = read_results(before), read_results(after)
        rows = compare_results(a, b, resamples=resamples)
        table = []
        for key, r in rows.items():
            flag = "REGRESSION > 3 pts" if r["regression"] else ""
            diff = f"{100 * r['diff']:+.1f} [{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]"
            scores = f"{r['before']:.3f}", f"{r['after']:.3f}"
            table.append([key, r["domain"], str(r["n"]), *scores, diff, flag])
        columns = ("task", "domain", "n", "before", "after", "diff [95% paired CI]", "flag")
        _print_table(f"{model_label(a)} -> {model_label(b)}", columns, table)
        if output:
            write_json(output, rows)
        if any(r["regression"] for r in rows.values()):
            typer.echo("warning: a general benchmark regressed by more than 3 points (forgetting)", err=True)
