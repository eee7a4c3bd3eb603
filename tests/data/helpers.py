"""The data-stage tests import their corpus builders from here (their home is tests/factories/corpora.py)."""

from tests.factories.corpora import WORDS, random_documents, write_jsonl  # noqa: F401
