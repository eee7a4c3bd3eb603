"""Fixtures of the compress tests (helpers live in helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import save_tiny, tiny_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture
def three_llamas(tmp_path: Path, tokenizer) -> list[Path]:
    return [save_tiny(tmp_path / f"m{i}", "llama", seed=i, tokenizer=tokenizer) for i in range(3)]
