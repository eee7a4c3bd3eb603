"""Compatibility alias of `biomamba.models.generation` (import `generate` from `biomamba.models` instead).

Importing this submodule binds the name ``biomamba.models.generate`` to the module, which would shadow the
``generate`` function for ``from biomamba.models import generate``; the module is therefore made callable
(it forwards to the function), so both spellings keep working in one process.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from biomamba.models.generation import Generation, StreamEvent, generate, stream_generate

__all__ = ["Generation", "StreamEvent", "generate", "stream_generate"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return generate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
