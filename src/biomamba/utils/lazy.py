"""Lazy public names for stage packages: `import biomamba.eval` (and `biomamba --help`) stays free of torch.

A package lists `{name: module}` and sets `__getattr__ = lazy_exports(__name__, EXPORTS)`. Python only calls a
module's `__getattr__` for names it lacks, so an export must not share its name with a submodule of the package
(importing the submodule would bind the module object under that name); tests/utils/test_lazy.py checks this.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` that imports `exports[name]` on first use and returns its `name`."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
