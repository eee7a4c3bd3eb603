"""Lazy public names for stage packages: `import biomamba.eval` (and `biomamba --help`) stays free of torch.

A package states its public names once, as `from module import name` lines under `if TYPE_CHECKING:` (what
type checkers and readers see; never run), and sets `__all__, __getattr__ = lazy_exports(__name__, __file__)`:
the same lines, read from the package's source with `ast` (as scientific-python's lazy_loader reads a stub),
are the table `__getattr__` imports from on first use, so the two can never disagree. Python only calls a
module's `__getattr__` for names it lacks, so an export must not share its name with a submodule of the package
(importing the submodule would bind the module object under that name); tests/utils/test_lazy.py checks this.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any


def type_checking_imports(source: str | Path) -> dict[str, str]:
    """{name: module} of the `from module import name` lines under a file's top-level `if TYPE_CHECKING:`.

    Any other statement there is an error naming its line: its names would silently be missing at run time."""
    found: dict[str, str] = {}
    for node in ast.parse(Path(source).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                if not isinstance(stmt, ast.ImportFrom) or not stmt.module or stmt.level:
                    raise TypeError(f"{source}:{stmt.lineno}: expected `from biomamba.x import name`")
                found.update({alias.name: stmt.module for alias in stmt.names})
    return found


def lazy_exports(package: str, source: str | Path) -> tuple[list[str], Callable[[str], Any]]:
    """(`__all__`, a module-level `__getattr__`) of the package whose `__init__.py` is `source`: each name of
    its TYPE_CHECKING imports is imported from its module on first use."""
    exports = type_checking_imports(source)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return sorted(exports), __getattr__
