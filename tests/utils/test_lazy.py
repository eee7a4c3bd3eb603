"""Every lazily exported name of a stage package resolves to the object its module defines, even after all of
the package's submodules were imported (a submodule named like an export would shadow it)."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

LAZY_PACKAGES = ("biomamba.eval", "biomamba.models", "biomamba.train")


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


def test_unknown_name_is_an_attribute_error() -> None:
    import biomamba.eval

    with pytest.raises(AttributeError, match="'biomamba.eval' has no attribute 'nope'"):
        biomamba.eval.nope  # noqa: B018
