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

from typing import TYPE_CHECKING, Literal, get_args

from biomamba.utils.lazy import lazy_exports

if TYPE_CHECKING:  # the lazy names: type checkers read them, `lazy_exports` imports them on first use
    from biomamba.models.kernels.compiled import compiled_ssd  # noqa: F401
    from biomamba.models.kernels.dispatch import scan_backend  # noqa: F401
    from biomamba.models.kernels.fla_kernel import fla_chunk_scan, fla_inputs, fla_ssd  # noqa: F401
    from biomamba.models.kernels.mamba_ssm_kernel import triton_chunk_scan, triton_ssd  # noqa: F401

KernelChoice = Literal["auto", "torch", "torch_compile", "triton", "fla"]
KERNEL_CHOICES: tuple[str, ...] = get_args(KernelChoice)

_lazy_names, __getattr__ = lazy_exports(__name__, __file__)
__all__ = sorted([*_lazy_names, "KERNEL_CHOICES", "KernelChoice"])
