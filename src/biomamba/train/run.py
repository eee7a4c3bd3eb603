"""`train(recipe)`: build the model, data and evaluators a recipe describes, run the Trainer, export final/.

Layout of a run directory (default `runs/<recipe name>/train`, or `--output-dir`):

    checkpoints/step-XXXXXXXX/   atomic checkpoints (see biomamba.train.checkpoint), the last K kept
    checkpoints/best/            best evaluation so far (train.keep_best)
    final/                       the model directory to evaluate or fine-tune (tokenizer included)
    final-ema/                   the EMA weights as a model directory (train.ema_decay)
    metrics.jsonl                one JSON object per logged step and per evaluation
    summary.json                 what `train` returns, as JSON
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from biomamba.config import load_recipe_dict, load_section, merge_overrides
from biomamba.errors import CheckpointError, DataError, RecipeError
from biomamba.models.families import family_named
from biomamba.train.config import TrainConfig
from biomamba.utils.atomic import atomic_dir, write_json


@dataclass
class TrainSummary:
    """What a training run produced (also written to RUN/summary.json)."""

    run_dir: Path
    final_dir: Path
    ema_dir: Path | None
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    steps: int
    tokens: int
    stopped: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def train(
    recipe: str | Path | Mapping[str, Any],
    *,
    output_dir: str | Path | None = None,
    resume: bool | str | Path = False,
    overrides: Mapping[str, Any] | None = None,
    callbacks: Sequence[Callable[[Any, dict[str, Any]], None]] = (),
    source: str | None = None,
) -> TrainSummary:
    """Run the recipe's `train:` section; callable repeatedly in one process (pretrain, then continue).

    `recipe` is a recipe file or an already-loaded recipe dict; `overrides` are dotted keys
    (`{"train.max_steps": 10}`) applied on top, as CLI flags are; `callbacks` are called as
    `fn(trainer, record)` after every optimizer step (e.g. a caller's own progress display); `source` names
    the recipe in error messages when a dict is passed.
    """
    source = source or (str(recipe) if isinstance(recipe, str | Path) else "recipe")
    raw = load_recipe_dict(recipe) if isinstance(recipe, str | Path) else dict(recipe)
    raw = merge_overrides(raw, overrides or {})
    config = load_section(raw, "train", TrainConfig, source)
    name = str(raw.get("name") or Path(source).stem or "run")
    raw["train"] = dict(raw.get("train") or {})
    if config.corpus is None:
        data = raw.get("data") or {}
        if not data:
            raise RecipeError(
                source, "train.corpus", "required: the corpus directory of `biomamba data build`"
            )
        # Same default as `biomamba data build`, so one recipe drives both commands.
        from biomamba.data.config import stage_output_dir

        config.corpus = stage_output_dir(raw, data.get("output_dir"), "corpus", name)
        raw["train"]["corpus"] = str(config.corpus)
    if config.max_steps is None and config.max_tokens is None:
        raise RecipeError(source, "train.max_steps", "set train.max_steps or train.max_tokens")
    run_dir = Path(output_dir) if output_dir else Path(raw.get("output_dir") or f"runs/{name}") / "train"
    seed = config.seed if config.seed is not None else int(raw.get("seed", 0))
    raw["train"]["seed"] = seed

    from biomamba.data.shards import TokenShards
    from biomamba.train.batches import PackedBatches
    from biomamba.train.distributed import init_distributed
    from biomamba.train.evaluate import HeldoutPerplexity, heldout_domains
    from biomamba.train.loss import CausalLMLoss
    from biomamba.train.trainer import Trainer, resolve_device

    info = init_distributed(None if config.device == "auto" else torch.device(config.device))
    _seed_everything(seed)
    shards = TokenShards(config.corpus, "train")
    model, family = build_model(
        config, source, vocab_size=shards.vocab_size, seed=seed, recipe=raw, eos_token_id=shards.eos_token_id
    )
    _check_vocab(model, shards, config)
    tokenizer = _load_tokenizer(config, shards, (raw.get("model") or {}).get("name_or_path"), source)
    use_seq_idx = family_named(family).takes_seq_idx
    batches = PackedBatches(
        shards, config.seq_len, config.micro_batch_size, seed=seed, rank=info.rank, world_size=info.world_size
    )
    evaluators = {}
    if config.eval_every and heldout_domains(str(config.corpus)):
        evaluators["heldout"] = HeldoutPerplexity(
            str(config.corpus),
            seq_len=config.seq_len,
            batch_size=config.micro_batch_size,
            max_tokens=config.eval_tokens,
            domains=config.eval_domains,
            use_seq_idx=use_seq_idx,
            device=resolve_device(config.device, info),
            dist_info=info,
        )
    trainer = Trainer(
        model,
        batches,
        CausalLMLoss(
            label_smoothing=config.label_smoothing, use_seq_idx=use_seq_idx, vocab_size=_real_vocab(model)
        ),
        config,
        run_dir,
        evaluators=evaluators,
        tokenizer=tokenizer,
        recipe=raw,
        dist_info=info,
        family=family,
        callbacks=callbacks,
    )
    result = trainer.fit(resume=resume)
    final_dir, ema_dir = run_dir / "final", None
    if info.is_main and result.last_checkpoint is not None:
        _export(result.last_checkpoint / "model", final_dir)
        if (result.last_checkpoint / "ema").is_dir():
            ema_dir = run_dir / "final-ema"
            _export(result.last_checkpoint / "ema", ema_dir)
    summary = TrainSummary(
        run_dir,
        final_dir,
        ema_dir,
        result.last_checkpoint,
        result.best_checkpoint,
        result.step,
        result.tokens,
        result.stopped,
        result.metrics,
    )
    if info.is_main:
        write_json(run_dir / "summary.json", summary.to_json())
    return summary


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _export(source: Path, target: Path) -> None:
    with atomic_dir(target) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)


def build_model(
    config: TrainConfig,
    source: str,
    *,
    vocab_size: int,
    seed: int,
    recipe: Mapping[str, Any] | None = None,
    eos_token_id: int | None = None,
) -> tuple[nn.Module, str]:
    """The model to train, from (in this order) train.base_model, train.architecture or the `model:` section.

    `train.base_model` continues a checkpoint; `train.architecture` builds a fresh Mamba2 or transformers
    model (BioMedLM's GPT-2); the `model:` section (the models stage's schema) does either for Mamba2.
    """
    from biomamba.models import family as model_family

    model_section = (recipe or {}).get("model")
    if model_section and (config.base_model is not None or config.architecture is not None):
        raise RecipeError(
            source,
            "train.base_model",
            "the model is set twice: use the model: section or "
            "train.base_model / train.architecture, not both",
        )
    if config.base_model is not None:
        model = load_base_model(config.base_model, source, "train.base_model")
    elif config.architecture is not None:
        model = create_architecture(
            config.architecture, source, vocab_size=vocab_size, seed=seed, eos_token_id=eos_token_id
        )
    elif model_section:
        from biomamba.models.config import ModelConfig

        section = load_section(recipe or {}, "model", ModelConfig, source)
        if section.name_or_path is not None:
            model = section.apply_scan_settings(
                load_base_model(section.name_or_path, source, "model.name_or_path")
            )
        else:
            model = section.build(seed=seed, vocab_size=section.vocab_size or vocab_size or None)
    else:
        raise RecipeError(
            source,
            "train.base_model",
            "no model: set train.base_model (a checkpoint), train.architecture "
            "(from scratch) or a model: section",
        )
    return model, model_family(model)


def load_base_model(name_or_path: str, source: str, key: str = "train.base_model") -> nn.Module:
    """Load the base checkpoint, turning 'not on this machine' into one actionable line."""
    from biomamba.models import load_model

    local = Path(name_or_path).expanduser()
    if not local.exists() and (name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") != 1):
        raise RecipeError(source, key, f"checkpoint directory not found: {name_or_path}")
    try:
        return load_model(str(local) if local.exists() else name_or_path, dtype=torch.float32)
    except (CheckpointError, OSError) as exc:
        if local.exists():
            raise
        raise RecipeError(
            source,
            key,
            f"'{name_or_path}' is not available offline ({str(exc).splitlines()[0]}); on a machine with "
            f"internet run `huggingface-cli download {name_or_path} --local-dir DIR`, copy DIR here and set "
            f"{key} to it",
        ) from None


def create_architecture(
    arch: str | Mapping[str, Any], source: str, *, vocab_size: int, seed: int, eos_token_id: int | None = None
) -> nn.Module:
    """A freshly initialised model: Mamba2 (preset or fields) or a transformers causal LM config."""
    from biomamba.models import create_model

    if isinstance(arch, str):
        return (
            create_model(arch, seed=seed, vocab_size=vocab_size)
            if vocab_size
            else create_model(arch, seed=seed)
        )
    fields = dict(arch)
    fields.setdefault("vocab_size", vocab_size)
    model_type = fields.pop("model_type", "mamba2")
    if family_named(model_type).native:
        try:
            return create_model(fields, seed=seed)
        except TypeError as exc:
            raise RecipeError(source, "train.architecture", f"invalid Mamba2 field: {exc}") from None
    from transformers import AutoConfig, AutoModelForCausalLM

    if eos_token_id is not None:  # the corpus's tokenizer, not GPT-2's 50256
        fields.setdefault("bos_token_id", eos_token_id)
        fields.setdefault("eos_token_id", eos_token_id)
    try:
        hf_config = AutoConfig.for_model(model_type, **fields)
    except (ValueError, KeyError) as exc:
        raise RecipeError(source, "train.architecture.model_type", str(exc).splitlines()[0]) from None
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(hf_config)


def _check_vocab(model: nn.Module, shards: Any, config: TrainConfig) -> None:
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    rows = embeddings.weight.shape[0] if embeddings is not None else None
    if rows is not None and shards.vocab_size and shards.vocab_size > rows:
        raise DataError(
            f"{config.corpus}: corpus vocabulary ({shards.vocab_size} ids) is larger than the model's embedding "
            f"({rows} rows): the corpus was tokenized with another tokenizer than the model's"
        )


def _real_vocab(model: nn.Module) -> int | None:
    """The tokenizer's vocabulary when the model's output is padded beyond it (Mamba2: a multiple of 16)."""
    config = getattr(model, "config", None)
    padded = getattr(config, "padded_vocab_size", None)
    real = getattr(config, "vocab_size", None)
    if padded is not None and real is not None and real < padded:
        return int(real)
    return None


def _load_tokenizer(
    config: TrainConfig, shards: Any, model_path: str | None = None, source: str = "recipe"
) -> Any:
    """The tokenizer saved with each checkpoint: train.tokenizer, else the base model's, else the corpus's.

    A `train.tokenizer` that cannot be loaded (a typo in the path above all) is an error, never skipped:
    checkpoints without the intended tokenizer would only fail later, in eval or serving.
    """
    from biomamba.models import load_tokenizer

    if config.tokenizer:
        try:
            return load_tokenizer(config.tokenizer)
        except (CheckpointError, OSError) as exc:
            raise RecipeError(source, "train.tokenizer", str(exc).splitlines()[0]) from None
    from biomamba.data.shards import read_manifest

    manifest = read_manifest(shards.corpus_dir).get("tokenizer")  # {"path": ...} of `biomamba data build`
    recorded = manifest.get("path") if isinstance(manifest, dict) else None
    for candidate in (config.base_model, model_path, recorded):
        if candidate and Path(candidate).exists():
            try:
                return load_tokenizer(candidate)
            except CheckpointError:
                continue
    return None
