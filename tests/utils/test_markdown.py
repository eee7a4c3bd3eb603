"""`markdown_table` writes GitHub-flavoured markdown: a header row, a separator carrying each column's
alignment, one row per record."""

from __future__ import annotations

from biomamba.utils.markdown import markdown_table


def test_header_separator_and_rows_with_right_aligned_numbers() -> None:
    lines = markdown_table(["name", "n", "note"], [["a", 1, "x"], ["b", 2.5, ""]], align="lr")
    assert lines == ["| name | n | note |", "|---|---:|---|", "| a | 1 | x |", "| b | 2.5 |  |"]
