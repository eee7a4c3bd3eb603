"""models stage: biomamba's pure-PyTorch Mamba2 and one interface over it and transformers' causal LMs.

(Full interface description: docs/models.md. Names are imported lazily so `biomamba --help` stays fast.)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Mamba2Config": "biomamba.models.mamba2",
    "Mamba2LMHeadModel": "biomamba.models.mamba2",
    "Mamba2Cache": "biomamba.models.mamba2",
    "CausalLMOutput": "biomamba.models.mamba2",
    "load_model": "biomamba.models.loading",
    "load_tokenizer": "biomamba.models.loading",
    "save_model": "biomamba.models.loading",
    "create_model": "biomamba.models.loading",
    "family": "biomamba.models.loading",
    "preset_config": "biomamba.models.presets",
    "count_parameters": "biomamba.models.presets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'biomamba.models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
