"""Mamba2 SSD scan backends, chosen by ``config.kernels`` (recipe ``model.kernels``).

- ``torch``: biomamba's chunked scan in plain PyTorch (`biomamba.models.ssd`), on any device: the reference
  the others are tested against.
- ``torch_compile``: the same function under torch.compile (`compiled`).
- ``triton``: mamba-ssm's ``mamba_chunk_scan_combined`` (`mamba_ssm_kernel`), CUDA only.
- ``fla``: flash-linear-attention's ``chunk_simple_gla`` (`fla_kernel`, the ``fla`` extra), CUDA only.
- ``auto`` (default): the first Triton kernel of ``dispatch.AUTO_ORDER`` that imports, on CUDA, else ``torch``.

Only whole-sequence forwards without a cache (training, scoring) use a kernel; decoding and cached prefill
always run the PyTorch recurrence. None of the kernels is required. This module stays free of torch, so the
recipe schema (`biomamba.models.config`) can read the choices.
"""

from __future__ import annotations

from typing import Literal, get_args

from biomamba.utils.lazy import lazy_exports

KernelChoice = Literal["auto", "torch", "torch_compile", "triton", "fla"]
KERNEL_CHOICES: tuple[str, ...] = get_args(KernelChoice)

_EXPORTS = {
    "triton_chunk_scan": "biomamba.models.kernels.mamba_ssm_kernel",
    "triton_ssd": "biomamba.models.kernels.mamba_ssm_kernel",
    "fla_chunk_scan": "biomamba.models.kernels.fla_kernel",
    "fla_inputs": "biomamba.models.kernels.fla_kernel",
    "fla_ssd": "biomamba.models.kernels.fla_kernel",
    "compiled_ssd": "biomamba.models.kernels.compiled",
    "scan_backend": "biomamba.models.kernels.dispatch",
    "installed_kernels": "biomamba.models.kernels.dispatch",
}

__all__ = sorted([*_EXPORTS, "KERNEL_CHOICES", "KernelChoice"])

__getattr__ = lazy_exports(__name__, _EXPORTS)
