"""Fixtures of the serve tests (helpers live in helpers.py)."""

from __future__ import annotations

import pytest

from .helpers import tiny_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()
