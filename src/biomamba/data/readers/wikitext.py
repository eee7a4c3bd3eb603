"""`wikitext`: raw wikitext dumps (wikitext-2/103 `.raw`), split into articles at top-level ` = Title = `."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from biomamba.data.readers.base import Probe, Reader, SourceConfig, register
from biomamba.data.readers.streams import Document, FileReport, text_lines

_WIKI_TITLE = re.compile(r"^ = ([^=].*?) = $")
_SENTENCE_END = (".", "?", "!", '"', "\u201d", ")", ":", ";", "=")


def _is_formula_line(previous: str, following: str) -> bool:
    """A ` = ... = ` line inside a sentence (wikitext-2 breaks lines around the `=` of a dropped formula:
    "cut-off frequency of ωc / = 1 rad / s and a nominal impedance k = / 1 Ω . This ..."), not a title.

    A title follows a finished paragraph (or a blank line) and is followed by a sentence start (or a blank
    line); a formula fragment continues an unfinished sentence into a line that starts lower-case or with a
    digit. Both must hold to call it a fragment: a short list line before a title may lack a full stop.
    """
    before, after = previous.strip(), following.strip()
    if not before or not after or before.endswith(_SENTENCE_END):
        return False
    return after[0].isdigit() or after[0].islower()


@register
class Wikitext(Reader):
    """Raw wikitext: a line ` = Title = ` starts an article (` = = Section = = ` lines stay in the text).

    A title candidate is decided one line later (see `_is_formula_line`), so formula fragments that look like
    titles stay in their article.
    """

    name = "wikitext"

    def detect(self, probe: Probe) -> bool:
        return _WIKI_TITLE.match(probe.first_line) is not None

    def read(self, path: str, source: SourceConfig, report: FileReport) -> Iterator[Document]:
        title: str | None = None
        lines: list[str] = []
        stem = Path(path).name
        candidate: str | None = None  # a ` = X = ` line waiting for the next line to decide

        def flush() -> Iterator[Document]:
            body = "\n".join(line.strip() for line in lines if line.strip())
            if title is not None and body:
                yield Document(id=f"{stem}:{title}", text=f"{title}\n{body}")
            elif body:
                yield Document(id=f"{stem}:preamble", text=body)

        for _, text in text_lines(path, report):
            text = text.rstrip("\r\n")
            if candidate is not None:
                if _is_formula_line(lines[-1] if lines else "", text):
                    lines.append(candidate)
                else:
                    yield from flush()
                    title, lines = _title(candidate), []
                candidate = None
            if _WIKI_TITLE.match(text):
                candidate = text
            else:
                lines.append(text)
        if candidate is not None:
            yield from flush()
            title, lines = _title(candidate), []
        yield from flush()


def _title(line: str) -> str:
    return _WIKI_TITLE.match(line).group(1).strip()  # type: ignore[union-attr]
