"""The `if TYPE_CHECKING:` imports of each lazy stage package name exactly its lazy exports, each from the
module the lazy table says, so what a type checker sees is what `__getattr__` returns at run time."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGES = {"biomamba.eval": "_EXPORTS", "biomamba.models": "_EXPORTS", "biomamba.train": "_LOCATIONS"}


def _type_checking_imports(source: Path) -> dict[str, str]:
    """{name: module} of the `from module import name` lines under the top-level `if TYPE_CHECKING:`."""
    found: dict[str, str] = {}
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module
                found.update({alias.name: stmt.module for alias in stmt.names})
    return found


@pytest.mark.parametrize(("package_name", "table"), sorted(PACKAGES.items()))
def test_type_checking_imports_mirror_the_lazy_table(package_name: str, table: str) -> None:
    package = importlib.import_module(package_name)
    assert _type_checking_imports(Path(package.__file__)) == getattr(package, table)


def test_type_checking_imports_stay_lazy_at_run_time() -> None:
    """In a fresh interpreter, importing the packages loads none of the modules the block names."""
    prefixes = tuple(f"{name}." for name in PACKAGES)
    code = f"import sys, {', '.join(PACKAGES)}; print(sorted(m for m in sys.modules if m.startswith({prefixes})))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "[]"
