"""`parse_named_values`: the one NAME=VALUE reader behind `--fewshot-file`, `eval perplexity --text` and
`tokenizer fertility --text/--tokenizer`."""

from __future__ import annotations

from pathlib import Path

import pytest

from biomamba.config.command_line import parse_named_values
from biomamba.errors import BiomambaError


def test_split_at_the_first_equals_and_bare_values_named_by_bare_name() -> None:
    values = [" pubmed = runs/a=b/x.txt ", "data/c4.txt"]
    assert parse_named_values(values, "--text", lambda path: Path(path).stem) == {
        "pubmed": "runs/a=b/x.txt", "c4": "data/c4.txt"
    }  # fmt: skip
    with pytest.raises(BiomambaError, match=r"^--fewshot-file 'shots.jsonl': expected NAME=PATH$"):
        parse_named_values(["shots.jsonl"], "--fewshot-file")  # no bare_name: the option needs a NAME
