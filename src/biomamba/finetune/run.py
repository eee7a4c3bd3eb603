"""`finetune(recipe)`: load data and model, evaluate before, train with the trainer, evaluate after, save.

Run directory (default `runs/<recipe name>/finetune`):

    RUN/checkpoints/step-*/, RUN/checkpoints/best/   the trainer's checkpoints (model/ = weights or adapter)
    RUN/metrics.jsonl                                 the trainer's log (loss, lr, val/* evaluations)
    RUN/adapter/                                      LoRA only: the adapter in peft's format (one per task)
    RUN/final/                                        a plain model directory (adapter merged), with the
                                                      classifier head beside it for classifier tasks; not
                                                      written for LoRA with lora.merge: false
    RUN/results.json                                  before/after evaluation, data counts, skipped records;
                                                      `final_model` names the directory actually written
                                                      (final/, or adapter/ when not merged)
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biomamba.config import load_section
from biomamba.errors import BiomambaError, RecipeError
from biomamba.finetune.config import FinetuneConfig
from biomamba.finetune.records import BadRecords

RESULTS_FORMAT = "biomamba-finetune/1"


@dataclass
class Prepared:
    """Examples of every split, rendered for the task."""

    train: list[Any]
    validation: list[Any]
    test: list[Any]
    bad: BadRecords
    unusable: Counter[str]


def load_configs(recipe: dict[str, Any], source: str = "recipe") -> tuple[FinetuneConfig, Any]:
    """The `finetune:` section and a `TrainConfig` for the loop (defaults suited to fine-tuning)."""
    from biomamba.train.config import TrainConfig

    if not recipe.get("finetune"):
        raise RecipeError(source, "finetune", "a fine-tuning recipe needs a finetune: section")
    config = load_section(recipe, "finetune", FinetuneConfig, source)
    train_raw = dict(recipe.get("train") or {})
    for key in ("corpus", "base_model", "architecture"):
        if train_raw.get(key) is not None:
            raise RecipeError(source, f"train.{key}", "not used by finetune (set finetune.base_model / data)")
    train_raw.setdefault("seq_len", config.max_length)
    train_raw.setdefault("lr", 1e-4 if config.method == "full" else 3e-4)
    train_raw.setdefault("warmup_ratio", 0.05)
    train_raw.setdefault("weight_decay", 0.0)
    if recipe.get("seed") is not None:
        train_raw.setdefault("seed", recipe["seed"])
    train = load_section({"train": train_raw}, "train", TrainConfig, source)
    if train.ema_decay is not None:
        raise RecipeError(source, "train.ema_decay", "EMA is not supported for fine-tuning")
    return config, train


def _validation_split(examples: list[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Hold out a deterministic share of training examples (by hashed id, so stable across runs)."""
    from biomamba.finetune.clinical import split_of

    if fraction <= 0:
        return examples, []
    fractions = {"train": 1.0 - fraction, "validation": fraction}
    train, validation = [], []
    for example in examples:
        key = getattr(example, "patient_id", None) or example.id
        (validation if split_of(f"val:{key}", fractions, seed) == "validation" else train).append(example)
    return train, validation


def prepare_data(config: FinetuneConfig) -> Prepared:
    from biomamba.finetune.datasets import load_sources

    bad = BadRecords(config.on_bad_record)
    unusable: Counter[str] = Counter()
    train = load_sources(config.train_data, config, bad, unusable)
    validation = load_sources(config.validation_data, config, bad, unusable)
    if not validation:
        train, validation = _validation_split(list(train), config.validation_fraction, config.split_seed)
    test = load_sources(config.eval_data, config, bad, unusable)
    if not train:
        raise BiomambaError(
            "finetune.train_data: no usable training examples "
            f"(skipped: {bad.summary()['by_reason'] or 'none'}, unusable: {dict(unusable) or 'none'})"
        )
    return Prepared(list(train), list(validation), list(test), bad, unusable)


class Task:
    """The task-specific parts of a run: how to build the trainable model, batches, loss and evaluations."""

    def __init__(self, config: FinetuneConfig, tokenizer: Any, family: str) -> None:
        from biomamba.eval.backends import padding_id

        self.config = config
        self.tokenizer = tokenizer
        self.family = family
        self.pad_id = padding_id(tokenizer)  # the rule `biomamba eval` pads with, so both score alike

    @property
    def is_classifier(self) -> bool:
        return self.config.task in ("mc-classifier", "seq-classifier")

    # ---- model -------------------------------------------------------------------------------------------
    def wrap(self, lm: Any) -> Any:
        from biomamba.finetune.heads import ChoiceClassifier, SequenceClassifier

        if self.config.task == "mc-classifier":
            return ChoiceClassifier(lm)
        if self.config.task == "seq-classifier":
            return SequenceClassifier(lm, 3, ("yes", "no", "maybe"))
        return lm

    # ---- data --------------------------------------------------------------------------------------------
    def pairs(self, examples: list[Any]) -> list[Any]:
        from biomamba.finetune.templates import render

        return [render(e, self.tokenizer, self.config.template) for e in examples]

    def encode_questions(self, examples: list[Any]) -> list[Any]:
        from biomamba.finetune.heads import encode_choices, encode_sequence

        encode = encode_choices if self.config.task == "mc-classifier" else encode_sequence
        return [encode(self.tokenizer, e, self.config.max_length) for e in examples]

    def batches(self, examples: list[Any], micro_batch_size: int, seed: int, rank: int, world: int) -> Any:
        from biomamba.finetune.collate import answer_reserve, pack_greedy, tokenize_pair
        from biomamba.finetune.heads import collate_questions
        from biomamba.finetune.training import RowBatches, sft_collate

        if self.is_classifier:
            items = self.encode_questions(examples)
            mc = self.config.task == "mc-classifier"
            if mc:  # a batch needs one option count: group questions by it (MedQA 4 vs 5 options)
                counts = Counter(len(i.rows) for i in items)
                if len(counts) > 1:
                    raise BiomambaError(
                        f"finetune.train_data: mc-classifier questions mix option counts {dict(counts)}; "
                        "train one recipe per option count"
                    )

            def collate(rows: list[Any]) -> Any:
                return collate_questions(rows, self.pad_id, multiple_choice=mc)

            return RowBatches(items, collate, micro_batch_size, seed=seed, rank=rank, world_size=world)
        tokenized = [
            tokenize_pair(
                self.tokenizer,
                p.prompt,
                p.completion,
                self.config.max_length,
                answer_reserve=answer_reserve(self.tokenizer, p.choices) if p.choices else None,
            )
            for p in self.pairs(examples)
        ]
        rows = (
            pack_greedy(tokenized, self.config.max_length)
            if self.config.packing
            else [[t] for t in tokenized]
        )
        collate = sft_collate(self.pad_id, self.config.max_length, self.config.packing)
        return RowBatches(rows, collate, micro_batch_size, seed=seed, rank=rank, world_size=world)

    def loss(self) -> Any:
        from biomamba.finetune.training import ClassifierLoss, SFTLoss

        return ClassifierLoss() if self.is_classifier else SFTLoss(self.family)

    # ---- evaluation --------------------------------------------------------------------------------------
    def evaluate(self, model: Any, examples: list[Any]) -> dict[str, Any]:
        """Accuracy (QA, classifiers) or ROUGE (clinical generation) of `model` on `examples`."""
        from biomamba.finetune import evaluation as ev

        ecfg = self.config.evaluation
        if not examples:
            return {}
        if self.is_classifier:
            return ev.evaluate_classifier(
                model,
                self.encode_questions(examples),
                self.pad_id,
                multiple_choice=self.config.task == "mc-classifier",
                batch_size=ecfg.batch_size,
            )
        pairs = self.pairs(examples)
        clinical = self.config.task == "clinical-generation"
        if clinical or any(not p.choices for p in pairs):  # notes and free text: ROUGE of greedy output
            # a QA prompt + answer stays within max_length, as in training (GPT-2 has no positions beyond it)
            qa_budget = max(1, self.config.max_length - ecfg.max_new_tokens)
            budget = ecfg.max_prompt_tokens if clinical else qa_budget
            return ev.evaluate_generation(
                model, self.tokenizer, pairs, max_new_tokens=ecfg.max_new_tokens, max_prompt_tokens=budget
            )
        return ev.evaluate_choices(
            model, self.tokenizer, pairs, max_length=self.config.max_length, batch_size=ecfg.batch_size
        )

    def validation_loss(self, model: Any, examples: list[Any]) -> float:
        """Mean answer-token (or per-question) loss on validation examples, in eval mode."""
        import torch

        source = self.batches(examples, 1, 0, 0, 1) if examples else None
        if source is None:
            return math.nan
        loss_fn = self.loss()
        device = next(model.parameters()).device
        total = count = 0.0
        with torch.no_grad():
            for _ in range(len(source.rows)):
                batch = {k: v.to(device) for k, v in source.next_batch().items()}
                out = loss_fn(model, batch)
                total += float(out.loss_sum)
                count += float(out.num_targets)
        return total / max(count, 1.0)


def _source_counts(examples: list[Any]) -> dict[str, int]:
    """Training examples per source format (a mixture such as PubMedQA + BioASQ shows both)."""
    return dict(Counter(getattr(e, "source", "") or "unknown" for e in examples))


def _headline(report: dict[str, Any]) -> str:
    if "accuracy" in report:
        return (
            f"accuracy {report['accuracy']:.3f} (majority {report['majority_baseline']:.3f}, n={report['n']})"
        )
    if "rougeL" in report:
        return f"ROUGE-1 {report['rouge1']:.3f} ROUGE-2 {report['rouge2']:.3f} ROUGE-L {report['rougeL']:.3f}"
    return "n/a"


def _slim(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "predictions"} | (
        {"predictions": report["predictions"]} if "predictions" in report else {}
    )


def finetune(
    recipe: dict[str, Any],
    *,
    source: str = "recipe",
    output_dir: str | Path | None = None,
    resume: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    """Run one fine-tuning recipe end to end; returns (and writes) the results dict."""
    from biomamba.models import family as model_family
    from biomamba.models import load_tokenizer, save_model
    from biomamba.train import Trainer
    from biomamba.train.distributed import init_distributed
    from biomamba.utils.atomic import write_json

    config, train_config = load_configs(recipe, source)
    run_dir = Path(output_dir or Path("runs") / str(recipe.get("name") or "finetune") / "finetune")
    started = time.time()
    from biomamba.models.loading import resolve_model_dir

    resolve_model_dir(config.base_model)  # fail fast (offline hub name, missing dir) before reading data
    import torch

    torch.manual_seed(train_config.seed or 0)  # LoRA A matrices and classifier heads: same init every run
    data = prepare_data(config)
    log(
        f"data: {len(data.train)} train, {len(data.validation)} validation, {len(data.test)} test; "
        f"skipped {data.bad.total} bad records, {sum(data.unusable.values())} unusable notes; "
        f"train per source: {_source_counts(data.train)}"
    )
    tokenizer = load_tokenizer(config.tokenizer or config.base_model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm = _load_base(config)
    fam = model_family(lm)
    task = Task(config, tokenizer, fam)
    results: dict[str, Any] = {
        "format": RESULTS_FORMAT,
        "name": recipe.get("name"),
        "task": config.task,
        "base_model": config.base_model,
        "family": fam,
        "method": config.method,
        "source": config.source,
        "data": {
            "train": len(data.train),
            "validation": len(data.validation),
            "test": len(data.test),
            "train_sources": _source_counts(data.train),
            "bad_records": data.bad.summary(),
            "unusable": dict(data.unusable),
        },
    }
    seen = data.train[: config.evaluation.on_train] if config.evaluation.on_train else []
    eval_sets = {"test": data.test[: config.evaluation.limit] if config.evaluation.limit else data.test}
    if seen and config.task != "clinical-generation":
        eval_sets["train_seen"] = seen
    before_model = task.wrap(lm)
    if config.evaluation.before:
        results["before"] = {name: _slim(task.evaluate(before_model, ex)) for name, ex in eval_sets.items()}
        for name, report in results["before"].items():
            log(f"before {name}: {_headline(report)}")

    model = task.wrap(_apply_method(config, lm, fam)) if config.method != "full" else before_model
    # Join torchrun's process group before the rows are dealt out, so each rank draws its own share of them.
    info = init_distributed(None if train_config.device == "auto" else torch.device(train_config.device))
    rank, world = info.rank, info.world_size
    if train_config.max_steps is None and train_config.max_tokens is None:
        rows = len(task.batches(data.train, 1, 0, 0, 1).rows)
        steps = max(1, math.ceil(config.epochs * rows / train_config.global_batch_size))
        train_config = train_config.model_copy(update={"max_steps": steps})
    batches = task.batches(data.train, train_config.micro_batch_size, train_config.seed or 0, rank, world)
    if train_config.early_stopping is not None and not (data.validation and train_config.eval_every):
        raise RecipeError(
            source,
            "train.early_stopping",
            "needs train.eval_every and validation data (finetune.validation_data or validation_fraction)",
        )
    evaluators = {}
    if data.validation and train_config.eval_every:

        def validate(m: Any) -> dict[str, float]:
            out = {"loss": task.validation_loss(m, data.validation)}
            if config.task != "clinical-generation" and not (
                config.task == "sft-qa" and not data.validation[0].options
            ):
                out["accuracy"] = float(task.evaluate(m, data.validation)["accuracy"])
            return out

        evaluators["val"] = validate
    from biomamba.finetune.training import load_weights, save_weights

    trainer = Trainer(
        model,
        batches,
        task.loss(),
        train_config,
        run_dir,
        evaluators=evaluators,
        tokenizer=tokenizer,
        recipe=recipe,
        save_model_fn=save_weights,
        load_weights_fn=load_weights,
        dist_info=info,
        family=fam,
    )
    outcome = trainer.fit(resume=resume)
    if outcome.best_checkpoint is not None:
        load_weights(trainer.model, outcome.best_checkpoint / "model")
        log(f"restored the best checkpoint {outcome.best_checkpoint}")
    model = trainer.model
    results["train"] = {
        "steps": outcome.step,
        "stopped": outcome.stopped,
        "best_checkpoint": str(outcome.best_checkpoint) if outcome.best_checkpoint else None,
        "last_checkpoint": str(outcome.last_checkpoint) if outcome.last_checkpoint else None,
        "final_loss": outcome.metrics.get("loss"),
        "lr": train_config.lr,
        "max_steps": train_config.max_steps,
    }
    if rank == 0:
        model, final_dir = _write_outputs(model, config, task, tokenizer, run_dir, save_model)
        if config.method != "full":
            results["adapter"] = str(run_dir / "adapter")
        results["after"] = {name: _slim(task.evaluate(model, ex)) for name, ex in eval_sets.items()}
        for name, report in results["after"].items():
            log(f"after {name}: {_headline(report)}")
        results["final_model"] = str(final_dir)
        results["seconds"] = round(time.time() - started, 2)
        write_json(run_dir / "results.json", results)
    return results


def _load_base(config: FinetuneConfig) -> Any:
    """The base model in fp32 (full, LoRA), or with 4-bit target layers (QLoRA, CUDA only)."""
    from biomamba.models import load_model

    if config.method != "qlora":
        return load_model(config.base_model, dtype="float32")
    from biomamba.finetune.lora import check_qlora_available, load_model_4bit, lora_targets
    from biomamba.models.families import family_of_dir
    from biomamba.models.loading import resolve_model_dir

    check_qlora_available()
    model_dir = resolve_model_dir(config.base_model)
    fam = family_of_dir(model_dir).name
    return load_model_4bit(str(model_dir), fam, lora_targets(fam, config.lora.target_modules))


def _apply_method(config: FinetuneConfig, lm: Any, fam: str) -> Any:
    from biomamba.finetune.lora import apply_lora

    lcfg = config.lora
    return apply_lora(
        lm, fam, r=lcfg.r, alpha=lcfg.alpha, dropout=lcfg.dropout, target_modules=lcfg.target_modules
    )


def _write_outputs(
    model: Any, config: FinetuneConfig, task: Task, tokenizer: Any, run_dir: Path, save_model: Any
) -> tuple[Any, Path]:
    """Adapter (LoRA), then the plain final model (adapter merged).

    Returns the model to evaluate and the directory that holds it: final/, or adapter/ for LoRA with
    `lora.merge: false` (no final/ is written then).
    """
    from biomamba.finetune.heads import SequenceClassifier, save_classifier
    from biomamba.finetune.lora import merge_lora
    from biomamba.finetune.training import save_weights
    from biomamba.utils.atomic import atomic_dir

    lm = model.lm if isinstance(model, SequenceClassifier) else model
    if config.method != "full":
        with atomic_dir(run_dir / "adapter") as tmp:
            save_weights(model, tmp)
            from biomamba.tokenizer import save_tokenizer

            save_tokenizer(tokenizer, tmp)
        if not config.lora.merge:
            return model, run_dir / "adapter"
        lm = merge_lora(lm)
        if isinstance(model, SequenceClassifier):
            model.lm = lm
        else:
            model = lm
    if isinstance(model, SequenceClassifier):
        save_classifier(model, run_dir / "final", tokenizer)
    else:
        save_model(model, run_dir / "final", tokenizer)
    return model, run_dir / "final"
