"""`parse_named_values`: the one NAME=VALUE reader behind `--fewshot-file`, `eval perplexity --text` and
`tokenizer fertility --text/--tokenizer`."""

from __future__ import annotations

from pathlib import Path

import pytest

from biomamba.config.command_line import parse_named_values
from biomamba.errors import BiomambaError


def test_splits_at_the_first_equals_so_a_path_may_hold_one() -> None:
    parsed = parse_named_values([" pubmed = runs/a=b/x.txt ", "c4=c4.txt"], "--text")
    assert parsed == {"pubmed": "runs/a=b/x.txt", "c4": "c4.txt"}


def test_a_bare_value_is_named_by_bare_name() -> None:
    assert parse_named_values(["data/pubmed.txt"], "--text", lambda path: Path(path).stem) == {
        "pubmed": "data/pubmed.txt"
    }


def test_a_bare_value_without_bare_name_is_one_line_naming_the_flag() -> None:
    with pytest.raises(BiomambaError, match=r"^--fewshot-file 'shots.jsonl': expected NAME=PATH$"):
        parse_named_values(["shots.jsonl"], "--fewshot-file")
