"""The stage packages import one way only, and no modules import each other in a circle.

Read from the source with `ast` (nothing is imported), counting every import: top-level, inside functions
(lazy) and under TYPE_CHECKING, whose names a package re-exports lazily (biomamba.utils.lazy: so
``from biomamba.models import load_model`` is an import of biomamba.models.loading). The stage order is
docs/ARCHITECTURE.md's: a stage may import its own tier and the tiers below it, never one above.
"""

from __future__ import annotations

import ast
import graphlib
import importlib.util
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from biomamba.utils.lazy import type_checking_imports

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "biomamba"

# Lowest first; stages in one tuple share a tier. `errors` (a module) sits with the shared code, `cli` (the
# one command line, registering every stage) above everything.
TIERS: tuple[tuple[str, ...], ...] = (
    ("benchmarks", "config", "utils", "errors"),
    ("data",),
    ("tokenizer",),
    ("models",),
    ("train",),
    ("eval",),
    ("finetune",),
    ("compress",),
    ("serve",),
    ("report", "demo"),
    ("cli", "__main__"),
)
RANK = {stage: rank for rank, tier in enumerate(TIERS) for stage in tier}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "biomamba" else None


@cache
def lazy_exports(package: str) -> dict[str, str]:
    """The names a package's __init__ exports lazily (its TYPE_CHECKING imports): name -> module."""
    path = MODULES.get(package)
    return type_checking_imports(path) if path is not None and path.name == "__init__.py" else {}


def imported_modules(module: str) -> Iterator[tuple[str, int]]:
    """(biomamba module imported, line) for every import in `module`, lazy ones and re-exports included."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            targets = [(base, alias.name) for alias in node.names]
        else:
            continue
        for base, name in targets:
            if not base.startswith("biomamba"):
                continue
            if name and f"{base}.{name}" in MODULES:
                yield f"{base}.{name}", node.lineno
            elif name and name in lazy_exports(base):
                yield lazy_exports(base)[name], node.lineno
            elif base in MODULES:
                yield base, node.lineno


def edges() -> list[tuple[str, str, int]]:
    return [(m, target, line) for m in sorted(MODULES) for target, line in imported_modules(m) if target != m]


def test_every_stage_has_a_tier() -> None:
    missing = {stage_of(m) for m in MODULES} - {None} - set(RANK)
    assert not missing, f"stages missing from TIERS (add them where they belong): {missing}"


def test_no_stage_imports_a_stage_above_it() -> None:
    upward = [
        f"{MODULES[src].relative_to(SRC)}:{line} imports {dst} ({stage_of(src)} is below {stage_of(dst)})"
        for src, dst, line in edges()
        if stage_of(src) in RANK and stage_of(dst) in RANK and RANK[stage_of(dst)] > RANK[stage_of(src)]
    ]
    assert not upward, "\n".join(upward)


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One circle of imports in `graph` (its nodes in order, the first repeated last), or [] when none."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return exc.args[1]
    return []


def test_the_circle_finder_names_a_circle() -> None:
    circle = _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert circle[0] == circle[-1] and sorted(circle[1:]) == ["a", "b", "c"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def test_no_circle_between_stages() -> None:
    graph: dict[str, set[str]] = {}
    for src, dst, _ in edges():
        a, b = stage_of(src), stage_of(dst)
        if a and b and a != b:
            graph.setdefault(a, set()).add(b)
    assert _cycle(graph) == []


def test_no_circle_between_modules() -> None:
    """A package's __init__ only re-exports (lazily), so edges into a package facade are left out: the
    circle that matters is between the modules that hold the code."""
    graph: dict[str, set[str]] = {}
    for src, dst, _ in edges():
        if MODULES[dst].name != "__init__.py":
            graph.setdefault(src, set()).add(dst)
    assert _cycle(graph) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from biomamba.models import load_model\n", "biomamba.models.loading"),
        ("def f():\n    from biomamba.serve.engine import BatchingEngine\n", "biomamba.serve.engine"),
        ("from ..models import quantized\n", "biomamba.models.quantized"),
    ],
)
def test_the_reader_sees_lazy_relative_and_reexported_imports(
    source: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks above are only as good as this reader: it must find each kind of import."""
    monkeypatch.setitem(MODULES, "biomamba.train.probe", tmp_path / "probe.py")
    (tmp_path / "probe.py").write_text(source)
    assert expected in {target for target, _ in imported_modules("biomamba.train.probe")}
