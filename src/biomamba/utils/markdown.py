"""The one writer of markdown tables (reports, fertility, BENCHMARKS.md rows): header, separator, rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> list[str]:
    """The table's lines, no trailing newline. `align` has one letter per column, "r" right-aligning it
    (numbers), anything else or nothing leaving it left-aligned; cells are written with str()."""
    separator = "|" + "".join("---:|" if a == "r" else "---|" for a in align.ljust(len(head)))
    return ["| " + " | ".join(head) + " |", separator, *("| " + " | ".join(map(str, r)) + " |" for r in rows)]
