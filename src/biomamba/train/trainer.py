"""The one training loop of biomamba: pretraining, continued pretraining and fine-tuning all run here.

Plugging in (what the fine-tuning stage does)::

    from biomamba.train import Trainer, TrainConfig, CausalLMLoss, LossOutput

    config = TrainConfig(lr=2e-5, micro_batch_size=4, global_batch_size=16, max_steps=500, schedule="cosine",
                         warmup_ratio=0.05, eval_every=50, early_stopping={"metric": "val/accuracy",
                         "mode": "max"}, keep_best=True)
    trainer = Trainer(
        model,                         # any nn.Module; a peft-wrapped model works (only trainable params train)
        batches,                       # a BatchSource: next_batch() / state_dict() / load_state_dict()
        loss_fn,                       # (model, batch) -> LossOutput(loss_sum, num_targets): SUM, not mean
        config,
        output_dir="runs/sft",
        evaluators={"val": my_eval},   # name -> fn(model) -> {"accuracy": ...}; logged as "val/accuracy"
        tokenizer=tokenizer,           # saved into every checkpoint's model/
        save_model_fn=..., load_weights_fn=...,   # optional: how to write/read model/ (e.g. peft adapters)
    )
    result = trainer.fit(resume=False)   # True: continue from the newest checkpoint in output_dir

What the loop guarantees (tests in tests/train/):
- the gradient is exactly that of the mean loss over the global batch (all micro-batches on all processes,
  targets counted after masking), whatever the accumulation and world size;
- AdamW with decoupled weight decay, per-group lr scale (layer decay), gradient clipping, bf16 autocast over
  fp32 master weights, EMA, optional activation checkpointing and torch.compile, DDP or FSDP2 under torchrun;
- a non-finite loss or gradient norm skips the step (weights untouched) with a warning; after
  `max_nonfinite` in a row the run stops with an error;
- checkpoints are atomic and complete (see `biomamba.train.checkpoint`); `fit(resume=True)` after SIGKILL
  reproduces the uninterrupted loss sequence bitwise on CPU; SIGINT/SIGTERM save a checkpoint, then stop.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from biomamba.errors import BiomambaError, CheckpointError
from biomamba.train import checkpoint as ckpt
from biomamba.train.batches import BatchSource
from biomamba.train.config import TrainConfig
from biomamba.train.distributed import (
    DistInfo,
    all_reduce_sum,
    any_true,
    barrier,
    broadcast_object,
    init_distributed,
    is_fsdp,
    wrap_model,
)
from biomamba.train.ema import EMA
from biomamba.train.integrity import newest_intact, verify_checksums
from biomamba.train.loss import LossFn
from biomamba.train.metrics import MetricsLogger, detect_peak_tflops, flops_per_token, truncate_jsonl
from biomamba.train.optim import build_adamw, find_blocks, lr_factor
from biomamba.train.runlock import RunDirectoryBusy, RunLock

Evaluator = Callable[[nn.Module], Mapping[str, float]]
Callback = Callable[["Trainer", dict[str, Any]], None]


class TrainingAborted(BiomambaError):
    """The run cannot go on (e.g. the loss stayed non-finite); the last checkpoint is still good."""


@dataclass
class TrainResult:
    """What `Trainer.fit` returns."""

    step: int
    tokens: int
    stopped: str  # "completed", "early_stopping", "signal:SIGTERM", "signal:SIGINT"
    last_checkpoint: Path | None
    best_checkpoint: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # last training record merged with last evaluation


def resolve_device(name: str, info: DistInfo) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{info.local_rank}")
    return device


class Trainer:
    """Runs optimizer steps over a batch source and keeps the run recoverable. See the module docstring."""

    def __init__(
        self,
        model: nn.Module,
        batches: BatchSource,
        loss_fn: LossFn,
        config: TrainConfig,
        output_dir: str | Path,
        *,
        evaluators: Mapping[str, Evaluator] | None = None,
        callbacks: Sequence[Callback] = (),
        tokenizer: Any = None,
        recipe: Mapping[str, Any] | None = None,
        save_model_fn: ckpt.SaveModelFn = ckpt.default_save_model,
        load_weights_fn: ckpt.LoadWeightsFn = ckpt.default_load_weights,
        dist_info: DistInfo | None = None,
        family: str | None = None,
    ) -> None:
        self.config = config
        self.output_dir = Path(output_dir)
        self.checkpoint_root = self.output_dir / "checkpoints"
        self.batches = batches
        self.loss_fn = loss_fn
        self.evaluators = dict(evaluators or {})
        self.callbacks = list(callbacks)
        self.tokenizer = tokenizer
        self.recipe = dict(recipe) if recipe is not None else None
        self.save_model_fn = save_model_fn
        self.load_weights_fn = load_weights_fn
        self.dist = dist_info or init_distributed()
        self.device = resolve_device(config.device, self.dist)
        self.total_steps = config.total_steps()
        self.accumulation = config.accumulation(self.dist.world_size)
        self.precision = config.precision
        if self.precision == "auto":
            self.precision = "bf16" if self.device.type == "cuda" else "fp32"

        model = model.to(self.device)
        for param in model.parameters():  # fp32 master weights, whatever dtype the checkpoint had
            if param.is_floating_point() and param.dtype != torch.float32:
                param.data = param.data.float()
        if config.activation_checkpointing:
            _enable_activation_checkpointing(model)
        self.model = model  # the unwrapped module: what gets saved
        strategy = config.distributed if config.distributed != "auto" else "ddp"
        self.wrapped = wrap_model(model, strategy, self.dist, self.device)
        self.forward_model: nn.Module = torch.compile(self.wrapped) if config.compile else self.wrapped
        self.optimizer = build_adamw(
            self.model,
            lr=config.lr,
            betas=config.betas,
            eps=config.eps,
            weight_decay=config.weight_decay,
            no_decay=config.no_decay,
            layer_lr_decay=config.layer_lr_decay,
        )
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.ema = EMA(self.model, config.ema_decay) if config.ema_decay else None
        self.warmup_steps = (
            config.warmup_steps
            if config.warmup_steps is not None
            else round(config.warmup_ratio * self.total_steps)
        )
        peak = config.peak_tflops or detect_peak_tflops(self.device)
        self.flops_per_token = flops_per_token(model, config.seq_len, family)
        self.peak_flops = peak * 1e12 * self.dist.world_size if peak else None

        self.step = 0
        self.tokens = 0
        self.nonfinite_in_row = 0
        self.best_metric: float | None = None
        self.evals_without_improvement = 0
        self.last_eval: dict[str, float] = {}
        self.best_checkpoint: Path | None = None
        self._signal: int | None = None
        self.logger: MetricsLogger | None = None
        self._notes: list[str] = []  # said once the logger exists (e.g. a corrupt checkpoint set aside)

    # ------------------------------------------------------------------------------------------------ run
    def fit(self, resume: bool | str | Path = False) -> TrainResult:
        """Train until total_steps, early stopping or a signal; returns where the run ended."""
        lock = self._lock_run_dir()
        try:
            return self._fit(resume)
        finally:
            lock.release()

    def _lock_run_dir(self) -> RunLock:
        """Rank 0 takes the run directory's lock; every process raises when it is held elsewhere."""
        lock = RunLock(self.output_dir)
        refusal = None
        if self.dist.is_main:
            try:
                lock.acquire()
            except RunDirectoryBusy as exc:
                refusal = str(exc)
        refusal = broadcast_object(refusal, self.dist)
        if refusal is not None:
            raise RunDirectoryBusy(refusal)
        return lock

    def _fit(self, resume: bool | str | Path) -> TrainResult:
        self._notes.clear()
        start = self._prepare_start(resume)
        self.logger = MetricsLogger(
            self.output_dir / "metrics.jsonl",
            enabled=self.dist.is_main,
            total_steps=self.total_steps,
            tensorboard_dir=self.output_dir / "tensorboard" if self.config.tensorboard else None,
            progress=self.config.progress,
            start_step=self.step,
        )
        for note in self._notes:
            self.logger.message(note)
        if start is not None:
            self.logger.message(f"resumed from {start} at step {self.step}")
        stopped = "completed"
        last_record: dict[str, Any] = {}
        last_saved: Path | None = start
        try:
            with self._signal_handlers():
                while self.step < self.total_steps:
                    record = self._train_step()
                    if record is not None:
                        last_record = record
                    if self._should(self.config.eval_every) or (
                        self.step == self.total_steps and self.config.eval_every and self.evaluators
                    ):
                        if self._evaluate_and_check():
                            stopped = "early_stopping"
                    if any_true(self._signal is not None, self.dist, self.device):
                        stopped = f"signal:{signal.Signals(self._signal or signal.SIGTERM).name}"
                    if stopped != "completed" or self._should(self.config.save_every):
                        last_saved = self.save_checkpoint()
                    if stopped != "completed":
                        break
                if stopped == "completed" and (last_saved is None or last_saved.name != self._step_name()):
                    last_saved = self.save_checkpoint()
        finally:
            self.logger.close()
        metrics = {**last_record, **self.last_eval}
        return TrainResult(self.step, self.tokens, stopped, last_saved, self.best_checkpoint, metrics)

    def _should(self, every: int | None) -> bool:
        return bool(every) and self.step % every == 0 and self.step > 0

    def _step_name(self) -> str:
        return ckpt.step_dir_name(self.step)

    # ------------------------------------------------------------------------------------------- one step
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _sync_context(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        """Skip the gradient all-reduce on all but the last micro-batch of an accumulation."""
        if hasattr(self.wrapped, "no_sync") and not last:
            return self.wrapped.no_sync()
        if hasattr(self.model, "set_requires_gradient_sync"):
            self.model.set_requires_gradient_sync(last)
        return contextlib.nullcontext()

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
        }

    def _train_step(self) -> dict[str, Any] | None:
        """One optimizer step over `accumulation` micro-batches; returns the logged record (rank 0)."""
        started = time.perf_counter()
        self.forward_model.train()
        totals = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss sum, targets, tokens
        extra: dict[str, float] = {}
        for index in range(self.accumulation):
            batch = self._to_device(self.batches.next_batch())
            with self._sync_context(index == self.accumulation - 1), self._autocast():
                out = self.loss_fn(self.forward_model, batch)
            out.loss_sum.backward()
            # Accumulated on the device: one host sync per optimizer step, not per micro-batch.
            totals[0] += out.loss_sum.detach().double()
            totals[1] += out.num_targets
            totals[2] += batch["input_ids"].numel() if "input_ids" in batch else 0
            for key, value in out.metrics.items():
                extra[key] = extra.get(key, 0.0) + float(value)
        all_reduce_sum(totals, self.dist)
        loss_sum, targets, tokens = totals.tolist()
        loss = loss_sum / max(targets, 1.0)
        grad_norm = math.nan
        if math.isfinite(loss):
            # Gradients hold d(sum of local losses); DDP/FSDP averaged them over processes.
            scale = self.dist.world_size / max(targets, 1.0)
            grads = [p.grad for p in self.params if p.grad is not None]
            if grads and not any(type(g).__name__ == "DTensor" for g in grads[:1]):
                torch._foreach_mul_(grads, scale)
            else:
                for grad in grads:
                    grad.mul_(scale)
            grad_norm = self._clip_gradients()
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            return self._skip_step(loss, grad_norm)
        self.nonfinite_in_row = 0
        factor = lr_factor(
            self.step,
            self.total_steps,
            schedule=self.config.schedule,
            warmup_steps=self.warmup_steps,
            stable_ratio=self.config.stable_ratio,
            min_lr_ratio=self.config.min_lr_ratio,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * group.get("lr_scale", 1.0) * factor
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        self.tokens += int(tokens)
        elapsed = time.perf_counter() - started
        record = {
            "step": self.step,
            "loss": loss,
            "lr": self.config.lr * factor,
            "grad_norm": grad_norm,
            "tokens": self.tokens,
            "tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0,
            "step_time_s": elapsed,
        }
        if self.peak_flops:
            record["mfu"] = record["tokens_per_s"] * self.flops_per_token / self.peak_flops
        record.update({k: v / max(targets, 1.0) for k, v in extra.items()})
        for callback in self.callbacks:
            callback(self, record)
        if self.step % self.config.log_every == 0 or self.step == self.total_steps:
            assert self.logger is not None
            self.logger.log(record)
            return record
        return None

    def _clip_gradients(self) -> float:
        max_norm = self.config.clip_grad_norm if self.config.clip_grad_norm is not None else math.inf
        grads = [p for p in self.params if p.grad is not None]
        if not grads:
            return 0.0
        norm = torch.nn.utils.clip_grad_norm_(grads, max_norm)
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        return float(norm)

    def _skip_step(self, loss: float, grad_norm: float) -> None:
        """Drop this batch's gradients, leave weights and optimizer untouched, count the strike."""
        self.optimizer.zero_grad(set_to_none=True)
        self.nonfinite_in_row += 1
        assert self.logger is not None
        self.logger.message(
            f"warning: step {self.step + 1}: non-finite loss {loss} / grad norm {grad_norm}; step skipped "
            f"({self.nonfinite_in_row}/{self.config.max_nonfinite} in a row)"
        )
        self.logger.log({"step": self.step, "skipped": True, "loss": loss, "grad_norm": grad_norm})
        if self.nonfinite_in_row >= self.config.max_nonfinite:
            last = ckpt.latest_checkpoint(self.checkpoint_root)
            where = f"last good checkpoint: {last}" if last else "no checkpoint was written yet"
            raise TrainingAborted(
                f"{self.nonfinite_in_row} non-finite losses in a row at step {self.step}; stopping "
                f"(train.max_nonfinite={self.config.max_nonfinite}). Lower train.lr or check the data; {where}"
            )

    # ------------------------------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, float]:
        """Run every evaluator in eval mode without gradients; keys are '<evaluator>/<metric>'."""
        results: dict[str, float] = {}
        self.forward_model.eval()
        with torch.no_grad(), self._autocast():
            for name, evaluator in self.evaluators.items():
                for key, value in evaluator(self.forward_model).items():
                    results[f"{name}/{key}"] = float(value)
        self.forward_model.train()
        return results

    def _evaluate_and_check(self) -> bool:
        """Evaluate, log, keep the best checkpoint; True when early stopping says stop."""
        if not self.evaluators:
            return False
        results = self.evaluate()
        self.last_eval = results
        assert self.logger is not None
        self.logger.log({"step": self.step, **results})
        self.logger.message(
            f"eval step {self.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(results.items()))
        )
        rule = self.config.early_stopping
        if rule is None:
            return False
        if rule.metric not in results:
            raise BiomambaError(
                f"train.early_stopping.metric: '{rule.metric}' is not reported (have: {', '.join(results)})"
            )
        value = results[rule.metric]
        sign = 1.0 if rule.mode == "min" else -1.0
        improved = self.best_metric is None or sign * (self.best_metric - value) > rule.min_delta
        if improved:
            self.best_metric = value
            self.evals_without_improvement = 0
            if self.config.keep_best:
                self.best_checkpoint = self.save_checkpoint(name="best")
        else:
            self.evals_without_improvement += 1
        if self.evals_without_improvement >= rule.patience:
            self.logger.message(
                f"early stopping: {rule.metric} has not improved for {rule.patience} evaluations "
                f"(best {self.best_metric:.4g})"
            )
            return True
        return False

    # ----------------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, name: str | None = None) -> Path:
        """Write a complete checkpoint atomically (collective: every process must call it)."""
        name = name or self._step_name()
        model_state = ckpt.full_model_state(self.model, self.dist) if is_fsdp(self.model) else None
        ema_state = ckpt.full_ema_state(self.ema.shadow, self.dist) if self.ema is not None else None

        def writer(directory: Path) -> None:
            ckpt.save_sharded_state(directory / "optimizer", self.model, self.optimizer, self.ema)
            ckpt.write_state_json(directory / "rng" / f"rank-{self.dist.rank:05d}.json", ckpt.rng_state())
            if not self.dist.is_main:
                return
            self.save_model_fn(self.model, directory / "model", model_state)
            if ema_state is not None:
                full = dict(model_state) if model_state is not None else dict(self.model.state_dict())
                full.update(ema_state)
                self.save_model_fn(self.model, directory / "ema", full)
            if self.tokenizer is not None:
                from biomamba.tokenizer import save_tokenizer

                save_tokenizer(self.tokenizer, directory / "model")
                if ema_state is not None:
                    save_tokenizer(self.tokenizer, directory / "ema")
            ckpt.write_state_json(directory / "trainer_state.json", self._trainer_state())
            if self.recipe is not None:
                from biomamba.utils.atomic import write_text

                write_text(directory / "recipe.yaml", yaml.safe_dump(self.recipe, sort_keys=False))

        path = ckpt.write_checkpoint(self.checkpoint_root, name, self.dist, self.device, writer)
        if name != "best":
            ckpt.prune_checkpoints(self.checkpoint_root, self.config.keep_last, self.dist)
        if self.logger is not None:
            self.logger.message(f"checkpoint: {path}")
        return path

    def _trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "tokens": self.tokens,
            "data": self.batches.state_dict(),
            "world_size": self.dist.world_size,
            "nonfinite_in_row": self.nonfinite_in_row,
            "best_metric": self.best_metric,
            "evals_without_improvement": self.evals_without_improvement,
            "last_eval": self.last_eval,
            "ema": self.ema is not None,
        }

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore weights, optimizer, EMA, RNG, data position and counters from a checkpoint directory."""
        path = Path(path)
        state = ckpt.read_state_json(path / "trainer_state.json")
        self.load_weights_fn(self.model, path / "model")
        ckpt.load_sharded_state(path / "optimizer", self.model, self.optimizer, self.ema)
        rng_file = path / "rng" / f"rank-{self.dist.rank:05d}.json"
        if rng_file.is_file():  # absent when resuming on more processes than saved: keep the fresh seed
            ckpt.set_rng_state(ckpt.read_state_json(rng_file))
        self.batches.load_state_dict(state["data"])
        self.step = int(state["step"])
        self.tokens = int(state["tokens"])
        self.nonfinite_in_row = int(state.get("nonfinite_in_row", 0))
        self.best_metric = state.get("best_metric")
        self.evals_without_improvement = int(state.get("evals_without_improvement", 0))
        self.last_eval = dict(state.get("last_eval") or {})
        best = self.checkpoint_root / "best"
        self.best_checkpoint = best if best.is_dir() else None

    def _prepare_start(self, resume: bool | str | Path) -> Path | None:
        ckpt.clean_partials(self.checkpoint_root, self.dist)  # safe: this run holds the directory's lock
        barrier(self.dist)
        existing = ckpt.latest_checkpoint(self.checkpoint_root)
        if resume is False or resume is None:
            if existing is not None:
                raise BiomambaError(
                    f"{self.output_dir}: already holds checkpoints ({existing.name}); pass --resume to "
                    "continue that run, or choose another --output-dir"
                )
            if self.dist.is_main and (self.output_dir / "metrics.jsonl").exists():
                (self.output_dir / "metrics.jsonl").unlink()
            return None
        path = existing if resume is True else Path(resume)
        if path is None:
            return None  # --resume on a fresh run directory simply starts (handy for preemptible jobs)
        if not (path / "trainer_state.json").is_file():
            raise BiomambaError(f"{path}: not a checkpoint directory (no trainer_state.json)")
        path = self._intact_checkpoint(path, newest=resume is True)
        try:
            self.load_checkpoint(path)
        except CheckpointError as exc:
            earlier = [p for p in ckpt.list_checkpoints(self.checkpoint_root) if p.name < path.name]
            hint = f"; the previous checkpoint may be intact: --resume-from {earlier[-1]}" if earlier else ""
            raise CheckpointError(f"{exc}{hint}") from None
        if self.dist.is_main:
            truncate_jsonl(self.output_dir / "metrics.jsonl", self.step)
        return path

    def _intact_checkpoint(self, path: Path, *, newest: bool) -> Path:
        """Rank 0 verifies checksums (falling back to older checkpoints for --resume); all get its answer."""
        outcome: tuple[str, str] | None = None
        if self.dist.is_main:
            try:
                if newest:
                    checkpoints = ckpt.list_checkpoints(self.checkpoint_root)
                    chosen = newest_intact(checkpoints, self._notes.append)
                else:
                    chosen = path
                    verify_checksums(path)
                outcome = ("ok", str(chosen))
            except CheckpointError as exc:
                outcome = ("error", str(exc))
        outcome = broadcast_object(outcome, self.dist)
        if outcome[0] == "error":
            raise CheckpointError(outcome[1])
        return Path(outcome[1])

    # --------------------------------------------------------------------------------------------- signals
    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        """SIGINT/SIGTERM set a flag; the loop saves a checkpoint after the current step and stops."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: object) -> None:
            self._signal = signum

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def _enable_activation_checkpointing(model: nn.Module) -> None:
    """Recompute each block's activations in backward (transformers' switch when present, else a wrapper)."""
    if getattr(model, "supports_gradient_checkpointing", False):  # transformers models
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return
    if hasattr(model, "gradient_checkpointing_enable"):  # biomamba's Mamba2
        model.gradient_checkpointing_enable()
        return
    found = find_blocks(model)
    if found is None:
        raise BiomambaError("train.activation_checkpointing: this model has no repeated blocks to checkpoint")
    import functools

    from torch.utils.checkpoint import checkpoint

    # Patch forward instead of wrapping the module, so parameter names (and checkpoints) do not change.
    for block in found[1]:
        block.forward = functools.partial(checkpoint, block.forward, use_reentrant=False)
