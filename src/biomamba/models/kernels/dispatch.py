"""Which SSD implementation a Mamba2 forward uses (``config.kernels``), decided per call from the tensors."""

from __future__ import annotations

import os
from collections.abc import Callable

from torch import Tensor

from biomamba.models.kernels.fla_kernel import fla_chunk_scan
from biomamba.models.kernels.mamba_ssm_kernel import triton_chunk_scan

# `auto`'s preference among the Triton kernels installed, first usable wins. mamba-ssm first: it is the
# reference implementation and was auto's only choice before fla was added; benchmarks/gpu_suite.py measures
# both side by side and reports whether this order matches the measured ranking ("auto_order_agrees").
AUTO_ORDER = ("triton", "fla")

_IMPORTS: dict[str, Callable[[], Callable | None]] = {"triton": triton_chunk_scan, "fla": fla_chunk_scan}
_NEEDS = {
    "triton": "mamba-ssm's Triton kernels (scripts/mamba-ssm-reference.sh)",
    "fla": "fla-core (pip install 'biomamba[fla]')",
}


def interpreting() -> bool:
    """Triton's interpreter (TRITON_INTERPRET=1) runs Triton kernels on CPU tensors: the tests use it."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def kernel_usable(name: str, x: Tensor) -> bool:
    """Whether the Triton kernel ``name`` imports and can run on ``x``'s device."""
    return (x.is_cuda or interpreting()) and _IMPORTS[name]() is not None


def scan_backend(mode: str, x: Tensor) -> str:
    """The backend for this whole-sequence forward: ``torch``, ``torch_compile``, ``triton`` or ``fla``.

    ``auto`` takes the first of `AUTO_ORDER` that imports, on CUDA tensors only, else ``torch``; an explicit
    kernel that cannot run is an error rather than a silent fallback (the user asked for its speed)."""
    if mode in ("torch", "torch_compile"):
        return mode
    if mode == "auto":
        if not x.is_cuda:
            return "torch"
        return next((name for name in AUTO_ORDER if kernel_usable(name, x)), "torch")
    if mode not in _IMPORTS:
        raise ValueError(f"unknown kernels {mode!r}")
    if not kernel_usable(mode, x):
        raise RuntimeError(f"kernels={mode!r} needs {_NEEDS[mode]} and CUDA tensors")
    return mode
