"""Text normalisation and document filters.

Normalisation is NFC (so that "é" typed two ways is one token sequence, and exact dedup sees one text) plus
whitespace collapsing inside lines; newlines are kept because they carry structure (title / abstract sections).
Filters return the reason a document is dropped, so the manifest can count each reason.
"""

from __future__ import annotations

import re
import unicodedata

from biomamba.data.config import CleanConfig

_SPACES = re.compile(r"[^\S\n]+")
# C0/C1 control characters except tab and newline, plus invisible format characters that only break matching
# (zero-width space, BOM, soft hyphen, word joiner); the zero-width joiner stays (it is part of emoji/scripts).
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u200b\u2060\ufeff]")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_SYMBOLS = re.compile(r"[^\w\s]|_")


def normalize_text(text: str) -> str:
    """NFC, control characters removed, runs of spaces collapsed, blank lines collapsed, ends stripped."""
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n", text).strip()


def filter_reason(text: str, config: CleanConfig) -> str | None:
    """Why the (normalised) document should be dropped, or None to keep it."""
    length = len(text)
    if length < config.min_chars:
        return f"shorter than {config.min_chars} characters"
    if config.max_chars is not None and length > config.max_chars:
        return f"longer than {config.max_chars} characters"
    if config.min_words and len(text.split()) < config.min_words:
        return f"fewer than {config.min_words} words"
    other = len(_SYMBOLS.findall(text))
    if other > config.max_non_alnum_fraction * length:
        return f"more than {config.max_non_alnum_fraction:.0%} symbol characters"
    return None


_WORD = re.compile(r"\w+")


def words_for_matching(text: str) -> list[str]:
    """Lower-cased word tokens used by dedup shingles and decontamination n-grams (punctuation ignored).

    Matching on words rather than characters makes the n-gram test robust to spacing and punctuation
    differences between an evaluation set's copy of a text and the training corpus's copy.
    """
    return _WORD.findall(text.lower())
