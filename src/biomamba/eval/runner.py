"""`run_eval`: an evaluation as a recipe's `eval:` section describes it (what `biomamba eval run`, the demo and
the quantization table call), and `evaluate`: benchmark tasks on a loaded model -> a results dict
(biomamba-results/1)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from biomamba.errors import BiomambaError
from biomamba.eval import hub, resume
from biomamba.eval.backends import make_backend, padding_id
from biomamba.eval.config import EvalConfig
from biomamba.eval.domain_perplexity import check_tokenizer, perplexity
from biomamba.eval.metrics import bootstrap_interval, expected_calibration_error
from biomamba.eval.protocols import DEFAULT_SHOTS, PROTOCOLS, RUNNERS, ProtocolRun, prompt_hash
from biomamba.eval.results import FORMAT, write_results
from biomamba.eval.scoring import RequestEncoder
from biomamba.eval.tasks import (
    QuestionList,
    TaskFile,
    get_task,
    group_task_files,
    label_balance,
    load_questions,
    parse_task_file,
)

log = logging.getLogger(__name__)

# the keys of an `eval:` section that are `evaluate`'s keyword arguments of the same name
EVALUATE_SETTINGS = (
    "protocol shots seeds seed batch_size limit fewshot_files max_length backend max_new_tokens "
    "bootstrap_resamples ece_bins output"
).split()


def run_eval(
    config: EvalConfig,
    *,
    task_files: Sequence[TaskFile | str] = (),
    model: Any = None,
    tokenizer: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """The evaluation `config` describes -> its results dict (also written to `config.output` when set).

    `task_files` (the CLI's --task-file) replace recipe entries of the same key; `model` and `tokenizer`: a
    variant already in memory instead of loading `config.model`. One orchestration, so the CLI, the demo and
    the quantization table cannot drift apart in how they evaluate."""
    given = {**_by_key(f"{k}={v}" for k, v in config.task_files.items()), **_by_key(task_files)}
    if model is None and not config.model:
        raise BiomambaError("no model: give MODEL or eval.model in the recipe")
    selected = select_task_files(config.tasks, given, required=config.perplexity is None)
    if config.perplexity is not None and config.perplexity.corpus and config.model:
        check_tokenizer(config.perplexity.corpus, config.model if Path(config.model).is_dir() else None)
    if model is None:
        from biomamba.models import load_model, load_tokenizer

        model = load_model(config.model, device=config.device, dtype=config.dtype)
        tokenizer = load_tokenizer(config.model)
    settings = config.model_dump(include=set(EVALUATE_SETTINGS))
    results = evaluate(model, tokenizer, selected, **settings, model_name=config.model, progress=progress)
    if config.perplexity is not None:
        results["perplexity"] = perplexity(model, tokenizer=tokenizer, **config.perplexity.model_dump())
    if config.output:
        write_results(config.output, results)
    return results


def _by_key(specs: Iterable[TaskFile | str]) -> dict[str, TaskFile]:
    """Task files keyed by `TaskFile.key` (task + language); one key given twice reads both files."""
    return {tf.key: tf for tf in group_task_files(_as_task_file(spec) for spec in specs)}


def select_task_files(
    tasks: Sequence[str], task_files: dict[str, TaskFile], required: bool = True
) -> list[TaskFile]:
    """All task files, or those whose task (every language) or key (NAME@LANG) is in `tasks`; with none at
    all, an error when `required` (nothing else, e.g. perplexity, is to be measured)."""
    parsed = list(task_files.values())
    if not tasks:
        if not parsed and required:
            raise BiomambaError(
                "no tasks: give --task-file NAME=PATH (list tasks with `biomamba eval tasks`)"
            )
        return parsed
    missing = [t for t in tasks if not any(t in (p.task, p.key) for p in parsed)]
    if missing:
        raise BiomambaError(
            f"no file for task(s) {', '.join(missing)}: give --task-file NAME=PATH (a local file in the "
            "original format) or NAME=hub:DATASET[:CONFIG[:SPLIT]] (a hub copy, read when online)"
        )
    return [p for p in parsed if p.task in tasks or p.key in tasks]


def _as_task_file(item: TaskFile | str) -> TaskFile:
    return item if isinstance(item, TaskFile) else parse_task_file(item)


def evaluate(
    model: Any,
    tokenizer: Any,
    task_files: Sequence[TaskFile | str],
    *,
    protocol: str = "loglikelihood",
    shots: int | None = None,
    seeds: int = 3,
    seed: int = 0,
    batch_size: int = 16,
    limit: int | None = None,
    fewshot_files: dict[str, str] | None = None,
    max_length: int | None = None,
    backend: str = "auto",
    max_new_tokens: int = 16,
    bootstrap_resamples: int = 1000,
    ece_bins: int = 10,
    model_name: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    output: str | Path | None = None,
) -> dict[str, Any]:
    """Score every task file with one protocol; returns the results dict (write it with `write_results`).

    `task_files` are `TaskFile`s or strings `NAME=PATH` / `NAME@LANG=PATH`. With `shots` > 0 the shots
    are drawn by `seeds` seeds (seed, seed+1, ...) from the task's fewshot file (`fewshot_files[NAME]`)
    or else from the other questions of the same file; accuracy is then also given per seed. `limit`
    scores a sample of N questions per task, stratified by label and drawn with `seed`.

    With `output`, the results so far are written there (atomically) after every task, and tasks an
    earlier run already wrote there with the same fingerprint (biomamba.eval.resume) are reused, not rerun.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (one of {', '.join(PROTOCOLS)})")
    shots = DEFAULT_SHOTS[protocol] if shots is None else shots
    seed_list = [seed + i for i in range(seeds)] if shots > 0 else [seed]
    engine = make_backend(model, max_length=max_length, pad_id=padding_id(tokenizer), kind=backend)
    encoder = RequestEncoder(tokenizer, engine.max_length)
    target = Path(output) if output is not None else None
    previous = resume.finished_tasks(target)
    # hashed at the first task, so a run of no tasks (perplexity only) does not read every weight for nothing
    identity: dict[str, str] = {}
    settings = dict(
        protocol=protocol,
        shots=shots,
        seeds=seed_list,
        limit=limit,
        seed=seed,
        max_length=engine.max_length,
        max_new_tokens=max_new_tokens,
        bootstrap_resamples=bootstrap_resamples,
        ece_bins=ece_bins,
    )
    results = _results_header(model, model_name, engine, settings, batch_size)
    fewshot_files = fewshot_files or {}
    for task_file in group_task_files(_as_task_file(item) for item in task_files):
        # read first: the fingerprint takes the sha256 of every file from the reader, which hashed it anyway
        questions = load_questions(task_file, limit=limit, seed=seed)
        fewshot = fewshot_files.get(task_file.task)
        pool = None
        if shots and fewshot:
            pool = load_questions(TaskFile(task_file.task, Path(fewshot), task_file.language))
        task_settings = {
            **settings,
            "key": task_file.key,
            "fewshot_sha256": pool.file_sha256 if pool else None,
        }
        identity = identity or {
            "model": resume.model_fingerprint(model),
            "tokenizer": resume.tokenizer_fingerprint(tokenizer),
        }
        sources = None if hub.is_hub(task_file.raw or "") else questions.files  # a hub copy is never reused
        fingerprint = resume.task_fingerprint(identity, task_settings, sources)
        if resume.reusable(previous.get(task_file.key), fingerprint):
            log.info(
                "%s: finished by an earlier run into %s (same fingerprint), not rerun", task_file.key, target
            )
            results["tasks"][task_file.key] = previous[task_file.key]
            continue
        task = _evaluate_task(task_file, questions, pool, engine, encoder, settings, batch_size, progress)
        results["tasks"][task_file.key] = {**task, "fingerprint": fingerprint}
        if target is not None:
            write_results(target, results)
    return results


def _results_header(
    model: Any, model_name: str | None, engine: Any, settings: dict[str, Any], batch_size: int
) -> dict[str, Any]:
    """Everything of a results file but its tasks (docs/formats.md, "Results JSON")."""
    return {
        "format": FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": _model_info(model, model_name),
        "protocol": {
            "name": settings["protocol"],
            "shots": settings["shots"],
            "seeds": settings["seeds"],
            "batch_size": batch_size,
            "max_length": engine.max_length,
            "backend": type(engine).__name__,
            "target_delimiter": ProtocolRun.target_delimiter,
            "fewshot_delimiter": ProtocolRun.fewshot_delimiter,
        },
        "tasks": {},
    }


def _model_info(model: Any, name: str | None) -> dict[str, Any]:
    from dataclasses import replace

    from biomamba.models.families import GENERIC, family_spec

    # a model no family names (the "full" backend's stand-ins) is recorded by its class name
    fam = family_spec(model, default=replace(GENERIC, name=type(model).__name__)).name
    params = sum(p.numel() for p in model.parameters())
    config = getattr(model, "config", None)
    label = name or getattr(config, "_name_or_path", None) or type(model).__name__
    return {"name": str(label), "family": fam, "parameters": int(params)}


def _evaluate_task(
    task_file: TaskFile,
    questions: QuestionList,
    pool: QuestionList | None,
    engine: Any,
    encoder: RequestEncoder,
    settings: dict[str, Any],
    batch_size: int,
    progress: Callable[[str, int, int], None] | None,
) -> dict[str, Any]:
    """One task's results entry: `questions` (a sample when `--limit`) scored once per seed of `settings`
    (`evaluate`'s protocol, shots, seeds, ...), with shots drawn from `pool` or else from the questions."""
    spec = get_task(task_file.task)
    seed_list = settings["seeds"]
    predictions: list[dict[str, Any]] = []
    per_seed: list[float] = []
    started = time.perf_counter()
    for number, seed in enumerate(seed_list, start=1):
        run = ProtocolRun(
            shots=settings["shots"],
            seed=seed,
            batch_size=batch_size,
            max_new_tokens=settings["max_new_tokens"],
        )
        records = RUNNERS[settings["protocol"]](spec, questions, engine, encoder, run, pool=pool)
        if progress is not None:
            progress(task_file.key, number * len(questions), len(seed_list) * len(questions))
        for record in records:
            record["seed"] = seed
        per_seed.append(float(np.mean([r["correct"] for r in records])))
        predictions.extend(records)
    elapsed = time.perf_counter() - started
    return {
        "task": task_file.task,
        "language": task_file.language,
        "domain": spec.domain,
        "file": str(task_file.path),
        "file_sha256": questions.file_sha256,  # {file: sha256} when a folder or glob was read
        "format": questions.format,
        "n": len(questions),
        "limit": questions.limit,
        "label_balance": label_balance(questions),
        "prompt_hash": prompt_hash("".join(p["prompt_sha"] for p in predictions)),
        "metrics": _metrics(spec.metric, predictions, per_seed, settings),
        "elapsed_s": round(elapsed, 3),
        "questions_per_s": round(len(questions) * len(seed_list) / max(elapsed, 1e-9), 3),
        "predictions": predictions,
    }


def _metrics(
    metric: str, preds: list[dict[str, Any]], per_seed: list[float], settings: dict[str, Any]
) -> dict[str, Any]:
    """acc (and acc_norm) with bootstrap intervals over questions, per-seed spread, and what the task's
    metric and the protocol add (ECE, invalid top tokens, unanswered generations, LAMBADA perplexity)."""
    protocol, resamples = settings["protocol"], settings["bootstrap_resamples"]
    by_question: dict[str, list[dict[str, Any]]] = {}
    for p in preds:
        by_question.setdefault(str(p["id"]), []).append(p)
    out: dict[str, Any] = {}
    keys = ["correct"] + (["correct_norm"] if protocol == "loglikelihood" and metric == "mc" else [])
    for key in keys:
        name = "acc" if key == "correct" else "acc_norm"
        scores = [float(np.mean([p[key] for p in group])) for group in by_question.values()]
        out[name] = float(np.mean(scores))
        out[f"{name}_ci"] = list(bootstrap_interval(scores, resamples=resamples, seed=settings["seed"]))
    if len(per_seed) > 1:
        out["acc_per_seed"] = per_seed
        out["acc_seed_mean"] = float(np.mean(per_seed))
        out["acc_seed_std"] = float(np.std(per_seed, ddof=1))
    if protocol != "generate" and metric == "mc":
        out["ece"] = expected_calibration_error(
            [p["confidence"] for p in preds], [p["correct"] for p in preds], settings["ece_bins"]
        )
    if protocol == "letter":
        out["invalid_top_token_rate"] = float(np.mean([not p["top_token_valid"] for p in preds]))
    if protocol == "generate":
        out["no_answer_rate"] = float(np.mean([p["pred"] == -1 for p in preds]))
    if metric == "loglik":
        lls = [p["logliks"][0] for p in preds]
        out["ppl"] = float(np.exp(-np.mean(lls)))
    return out
