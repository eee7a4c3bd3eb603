"""Fixtures of the compress tests (helpers live in helpers.py; `tokenizer` is tests/conftest.py's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import save_tiny


@pytest.fixture
def three_llamas(tmp_path: Path, tokenizer) -> list[Path]:
    return [save_tiny(tmp_path / f"m{i}", "llama", seed=i, tokenizer=tokenizer) for i in range(3)]
