"""``kernels: torch_compile``: biomamba's own chunked SSD (`biomamba.models.ssd.ssd_chunked`), compiled.

Why a scan-level switch beside the trainer's ``compile`` (which compiles the whole wrapped model): the scan is
where eager PyTorch spends its time in small elementwise kernels (masks, exponentials, layout copies between
the einsums) that Inductor fuses, and compiling only it keeps the compile short and leaves the rest of the
model (and its hooks, LoRA adapters, quantized layers) untouched. The same function as ``torch``: the same
math, so only float rounding differs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from biomamba.models.ssd import ssd_chunked


@functools.cache
def compiled_ssd() -> Callable:
    """`ssd_chunked` under torch.compile, built once per process (Inductor caches one graph per shape)."""
    return torch.compile(ssd_chunked, fullgraph=True)
