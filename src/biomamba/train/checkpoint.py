"""Checkpoints: atomic, complete, resumable at any world size.

Layout of `RUN/checkpoints/step-XXXXXXXX/` (see docs/train.md):

    model/               a model directory (safetensors + config.json + tokenizer): load it like any model
    ema/                 the EMA weights as a model directory (when train.ema_decay is set)
    optimizer/           optimizer (and EMA) state, torch.distributed.checkpoint format: sharded under FSDP,
                         keyed by parameter name, so it reloads on any number of processes
    rng/rank-NNNNN.json  Python, NumPy, torch (and CUDA) RNG states of each process
    trainer_state.json   step, tokens seen, data position, guard and early-stopping counters
    recipe.yaml          the resolved recipe the run used
    checksums.json       size and sha256 of every file above (biomamba.train.integrity), verified on resume

Reading one never unpickles code: weights are safetensors, state is JSON, and the optimizer directory is
read through biomamba.train.safe_dcp (restricted metadata unpickler, weights-only values).

The directory is built as `.step-XXXXXXXX.partial` and renamed into place by rank 0 only after every process
has written its part and rank 0 has recorded the checksums, so a crash, SIGKILL or full disk at any moment
leaves the previous checkpoints intact and never a half-written one under a real name. The lr schedule is a pure function of the step, so the step
IS the scheduler state.
"""

from __future__ import annotations

import contextlib
import errno
import json
import random
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from biomamba.errors import CheckpointError
from biomamba.train.distributed import DistInfo, any_true, barrier, is_fsdp
from biomamba.utils.atomic import write_json

STATE_FORMAT = "biomamba-train-state/1"
STEP_PREFIX = "step-"

SaveModelFn = Callable[[nn.Module, Path, "dict[str, torch.Tensor] | None"], None]
LoadWeightsFn = Callable[[nn.Module, Path], None]


def step_dir_name(step: int) -> str:
    return f"{STEP_PREFIX}{step:08d}"


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first (partial ones start with '.' and are ignored)."""
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(STEP_PREFIX) and (p / "trainer_state.json").is_file()
    ]
    return sorted(found, key=lambda p: int(p.name[len(STEP_PREFIX) :]))


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


# ----------------------------------------------------------------------------------------------- RNG states
def rng_state() -> dict[str, Any]:
    """All RNG states of this process as JSON-safe data (no pickle needed to read them back)."""
    np_state = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


# ---------------------------------------------------------------------------------------- model weights
def full_model_state(model: nn.Module, info: DistInfo) -> dict[str, torch.Tensor] | None:
    """The full (unsharded) state dict on rank 0, None elsewhere. Collective under FSDP."""
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(model, options=options)
        return state if info.is_main else None
    return model.state_dict() if info.is_main else None


def full_ema_state(ema_shadow: dict[str, torch.Tensor], info: DistInfo) -> dict[str, torch.Tensor] | None:
    """Gather EMA shards (DTensors under FSDP) into full CPU tensors on rank 0. Collective under FSDP."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in ema_shadow.items():
        full = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
        if info.is_main:
            out[name] = full.detach().to("cpu", copy=True)
    return out if info.is_main else None


def default_save_model(model: nn.Module, directory: Path, state_dict: dict[str, torch.Tensor] | None) -> None:
    """Write a model directory; `state_dict` (full tensors) replaces the live weights when given.

    Uses the models stage's `save_model` (transformers Mamba2 format for biomamba's Mamba2) when it applies,
    else transformers' `save_pretrained` (safetensors).
    """
    from biomamba.models import save_model

    if hasattr(model, "save_pretrained"):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    if state_dict is None:
        save_model(model, directory)
        return
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(directory, state_dict=state_dict, safe_serialization=True)
        return
    if is_fsdp(model):
        # Sharded parameters cannot be swapped: build an empty twin on the meta device, fill it, save it.
        with torch.device("meta"):
            twin = type(model)(model.config)
        twin.load_state_dict(state_dict, strict=False, assign=True)
        if hasattr(twin, "tie_weights"):
            twin.tie_weights()
        save_model(twin, directory)
        return
    with _swapped_weights(model, state_dict):
        save_model(model, directory)


class _swapped_weights:
    """Temporarily point the model's tensors at other storage (no copy), e.g. to save EMA weights."""

    def __init__(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        self.pairs = [(t, state[n]) for n, t in model.state_dict(keep_vars=True).items() if n in state]

    def __enter__(self) -> None:
        self.saved = [t.data for t, _ in self.pairs]
        for tensor, new in self.pairs:
            tensor.data = new.to(tensor.device, tensor.dtype)

    def __exit__(self, *exc: object) -> None:
        for (tensor, _), old in zip(self.pairs, self.saved, strict=True):
            tensor.data = old


def read_safetensors_dir(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a model directory's safetensors files (single file or sharded with an index)."""
    from safetensors.torch import load_file

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{directory}: no .safetensors weights found")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            state.update(load_file(str(file)))
        except Exception as exc:  # SafetensorError: truncated header, bad offsets
            raise CheckpointError(f"{file}: unreadable weights ({_first_line(exc)})") from None
    return state


def _tied_aliases(model: nn.Module) -> set[str]:
    """Names of parameters that share storage with an earlier-named parameter (tied weights)."""
    seen: dict[int, str] = {}
    aliases: set[str] = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            aliases.add(name)
        else:
            seen[id(param)] = name
    return aliases


def default_load_weights(model: nn.Module, directory: Path) -> None:
    """Load a checkpoint's model/ weights into the live model (sharded or not), checking every key.

    When the on-disk key names are not the module's (a format converted on save), the models stage's
    `load_model` reads the directory and its weights are copied over.
    """
    state = read_safetensors_dir(directory)
    own = model.state_dict()
    aliases = _tied_aliases(model)
    missing = [k for k in own if k not in state and k not in aliases]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        from biomamba.models import load_model

        state = load_model(str(directory)).state_dict()
        missing = [k for k in own if k not in state and k not in aliases]
        if missing:
            raise CheckpointError(f"{directory}: weights do not match the model: missing {missing[:5]}")
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=False))
        return
    with torch.no_grad():
        for name, tensor in own.items():
            if name in state:
                if tensor.shape != state[name].shape:
                    raise CheckpointError(
                        f"{directory}: {name} has shape {tuple(state[name].shape)}, model {tuple(tensor.shape)}"
                    )
                tensor.copy_(state[name])


# ------------------------------------------------------------------------------------- optimizer (+ EMA)
def save_sharded_state(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer, ema: Any) -> None:
    """Optimizer state keyed by parameter name (and EMA shards) with torch.distributed.checkpoint."""
    import torch.distributed.checkpoint as dcp

    with _quiet_single_process():
        dcp.save(_sharded_state(model, optimizer, ema), checkpoint_id=str(directory))


def _sharded_state(model: nn.Module, optimizer: torch.optim.Optimizer, ema: Any) -> dict[str, Any]:
    """What the optimizer/ directory holds, as DCP saves it and fills it in place on load."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    state: dict[str, Any] = {"optimizer": get_optimizer_state_dict(model, optimizer)}
    if ema is not None:
        state["ema"] = ema.state_dict()
    return state


def load_sharded_state(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer, ema: Any) -> None:
    """Restore optimizer (and EMA) state written by `save_sharded_state`, unpickling no code (safe_dcp)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    from biomamba.train.safe_dcp import SafeFileSystemReader, SafeLoadPlanner

    reader = SafeFileSystemReader(directory)
    reader.read_metadata()  # refuse a hostile or corrupt file here, before DCP logs tracebacks of its own
    state = _sharded_state(model, optimizer, ema)
    try:
        with _quiet_single_process():
            dcp.load(state, storage_reader=reader, planner=SafeLoadPlanner())
    except (Exception, _dcp_exception()) as exc:
        raise _read_error(directory, "optimizer state", exc) from None
    set_optimizer_state_dict(model, optimizer, state["optimizer"])
    if ema is not None:
        ema.load_state_dict(state["ema"])


def _dcp_exception() -> type[BaseException]:
    """DCP's CheckpointException (a BaseException: `except Exception` misses it)."""
    from torch.distributed.checkpoint.api import CheckpointException

    return CheckpointException


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, its chained causes and, for DCP's CheckpointException, every process's own exception."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        failures = getattr(current, "failures", None)
        if isinstance(failures, dict):
            stack.extend(pair[0] for pair in failures.values() if isinstance(pair[0], BaseException))
        stack.extend(c for c in (current.__cause__, current.__context__) if c is not None)


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _read_error(directory: Path, what: str, exc: BaseException) -> CheckpointError:
    """One line for a checkpoint piece that cannot be read: our own refusal if there is one, else the cause."""
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, CheckpointError):
            return cause
    root = causes[-1] if causes else exc
    return CheckpointError(f"{directory}: cannot read {what} ({type(root).__name__}: {_first_line(root)})")


@contextlib.contextmanager
def _quiet_single_process() -> Iterator[None]:
    """DCP warns that it 'assumes a single process' whenever no process group exists: that is intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
        yield


# ------------------------------------------------------------------------------------------ atomic write
_DISK_FULL_MARKERS = (
    "No space left on device",
    "os error 28",
    "StorageFull",
    "Disk quota exceeded",
    "os error 122",
)
_WRITE_FAILED_MARKERS = (
    "os error",  # Rust writers (safetensors, tokenizers) quote the OS error
    "file write failed",  # torch.save's PytorchStreamWriter
    "unexpected pos",  # torch.save when a short write went unnoticed (seen on a full tmpfs)
    "iostream error",
    "I/O error",
    "Input/output error",
)


def write_failure(exc: BaseException, where: Path) -> tuple[str, str] | None:
    """('disk full' | 'write failed', detail) when `exc` is an I/O failure, None when it is a bug.

    Writers report a full disk in many shapes: OSError (json, shutil), SafetensorError with an IoError,
    torch.save's RuntimeError 'file write failed', a tokenizers Exception '... (os error 28)', and DCP wraps
    each in a CheckpointException per process; this looks through all of them.
    """
    for cause in _causes(exc):
        if isinstance(cause, _dcp_exception()):
            continue  # its text is every process's traceback: classify the processes' own exceptions
        if isinstance(cause, OSError):
            full = cause.errno in (errno.ENOSPC, errno.EDQUOT)
            return ("disk full" if full else "write failed"), _first_line(cause)
        text = str(cause)
        if any(marker in text for marker in _DISK_FULL_MARKERS):
            return "disk full", _first_line(cause)
        if (
            any(marker in text for marker in _WRITE_FAILED_MARKERS)
            or type(cause).__name__ == "SafetensorError"
        ):
            reason = "disk full" if _free_bytes(where) < 1 << 20 else "write failed"
            return reason, _first_line(cause)
    return None


def _free_bytes(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 1 << 62


def _attempt(action: Callable[[], None]) -> BaseException | None:
    try:
        action()
    except (Exception, _dcp_exception()) as exc:
        return exc
    return None


def _abort_if_failed(error: BaseException | None, root: Path, target: Path, tmp: Path, info: DistInfo,
                     device: torch.device) -> None:  # fmt: skip
    """Collective: when any process failed, every process removes the partial and raises."""
    if not any_true(error is not None, info, device):
        return
    barrier(info)
    if info.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
    failure = write_failure(error, root) if error is not None else ("write failed", "on another process")
    if failure is None:
        assert error is not None
        raise error  # not an I/O failure: a bug, keep its traceback (the partial is gone all the same)
    previous = latest_checkpoint(root)
    kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
    raise CheckpointError(f"{target}: checkpoint not written ({failure[0]}: {failure[1]}); {kept}") from None


def write_checkpoint(
    root: Path,
    name: str,
    info: DistInfo,
    device: torch.device,
    writer: Callable[[Path], None],
) -> Path:
    """Run `writer(tmp_dir)` on every process, record checksums, then rename the directory into place.

    Any I/O failure on any process (a full disk above all, whatever exception type the writing library
    uses) aborts the save on all of them: the partial directory is removed, earlier checkpoints are
    untouched, and a CheckpointError says what happened.
    """
    from biomamba.train.integrity import write_checksums

    target = root / name
    tmp = root / f".{target.name}.partial"
    if info.is_main:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    barrier(info)
    _abort_if_failed(_attempt(lambda: writer(tmp)), root, target, tmp, info, device)
    barrier(info)  # every process's files are complete: rank 0 hashes them all
    error = _attempt(lambda: write_checksums(tmp)) if info.is_main else None
    _abort_if_failed(error, root, target, tmp, info, device)
    if info.is_main:
        if target.exists():
            old = root / f".{target.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    barrier(info)
    return target


def clean_partials(root: Path, info: DistInfo) -> list[Path]:
    """Remove what killed saves left behind (`.step-N.partial`, `.NAME.old`); rank 0, under the run lock.

    A `.NAME.old` whose `NAME` is gone was the previous complete checkpoint, killed in the middle of being
    replaced: it is put back instead of removed.
    """
    if not info.is_main or not root.is_dir():
        return []
    removed = []
    for path in sorted(root.iterdir()):
        if not (path.is_dir() and path.name.startswith(".")):
            continue
        if path.name.endswith(".old") and not (root / path.name[1:-4]).exists():
            path.rename(root / path.name[1:-4])
        elif path.name.endswith((".partial", ".old")):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def prune_checkpoints(root: Path, keep_last: int, info: DistInfo) -> None:
    """Delete all but the newest `keep_last` step checkpoints (rank 0)."""
    if not info.is_main:
        return
    for old in list_checkpoints(root)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def write_state_json(path: Path, state: dict[str, Any]) -> None:
    write_json(path, {"format": STATE_FORMAT, **state})


def read_state_json(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable trainer state ({exc})") from None
    if state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: unsupported trainer state format {state.get('format')!r}")
    return state
