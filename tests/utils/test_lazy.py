"""The lazy stage packages (biomamba.utils.lazy): their `if TYPE_CHECKING:` imports are their exports, each
the object of the module it names (what a type checker sees is what `__getattr__` returns at run time), even
after all of the package's submodules were imported (a submodule named like an export would shadow it)."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import biomamba.eval
from biomamba.utils.lazy import type_checking_imports

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "biomamba"
# every package whose __init__ sets up lazy exports, found in the source so a new one is checked too
LAZY_PACKAGES = tuple(
    f"biomamba.{init.parent.name}"
    for init in sorted(PACKAGE.glob("*/__init__.py"))
    if "lazy_exports(__name__, __file__)" in init.read_text(encoding="utf-8")
)


@pytest.mark.parametrize("package_name", LAZY_PACKAGES)
def test_type_checking_imports_are_the_lazy_exports(package_name: str) -> None:
    package = importlib.import_module(package_name)
    imports = type_checking_imports(package.__file__)
    assert sorted(imports) == package.__all__
    for name, module in imports.items():
        assert getattr(package, name) is getattr(importlib.import_module(module), name), name


@pytest.mark.parametrize("package_name", LAZY_PACKAGES)
def test_exports_resolve_after_every_submodule_is_imported(package_name: str) -> None:
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in {"cli", "lm_eval_cli"}:  # command-line entry points, imported by the CLI only
            importlib.import_module(f"{package_name}.{info.name}")
    assert package.__all__
    for name in package.__all__:
        value = getattr(package, name)
        assert not isinstance(value, types.ModuleType), f"{package_name}.{name} is shadowed by a submodule"


def test_type_checking_imports_stay_lazy_at_run_time() -> None:
    """In a fresh interpreter, importing the packages loads none of the modules the block names."""
    prefixes = tuple(f"{name}." for name in LAZY_PACKAGES)
    code = f"import sys, {', '.join(LAZY_PACKAGES)}; print(sorted(m for m in sys.modules if m.startswith({prefixes})))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "[]"


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="'biomamba.eval' has no attribute 'nope'"):
        biomamba.eval.nope  # noqa: B018


def test_a_statement_other_than_an_import_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "__init__.py"
    source.write_text("if TYPE_CHECKING:\n    from biomamba.eval.tasks import TASKS\n    TASKS = {}\n")
    with pytest.raises(TypeError, match=r"__init__\.py:3: expected `from biomamba\.x import name`"):
        type_checking_imports(source)
