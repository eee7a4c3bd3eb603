"""One identity per PubMed / PMC record across every source of a corpus, newest version wins.

The same citation reaches a corpus several ways: a MEDLINE baseline file and a later update file, a PubTator
file (BC5CDR, PubTator Central) and the MEDLINE XML of the same PMID, or two PMC bundles holding one article.
Every such record is keyed by its namespace and id (`pmid:123`, `pmc:PMC456`), whatever its source type or
domain, and only one version stays in the corpus:

- the NEWER version wins: a record with a later revision date (MEDLINE `DateRevised`) replaces an older one;
  a record without a date (PubTator, JATS) loses to one with a date, since it cannot show it is newer;
- between equally dated (or undated) versions, the one later in the build order wins (domains, sources and
  sorted files in recipe order: MEDLINE update files sort after the baseline, as NLM numbers them);
- a MEDLINE `DeleteCitation` removes the PMID's record seen so far, from whichever source it came.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Source type -> namespace of its document ids (other types have no shared identity: C4 urls, wiki titles).
IDENTITY_NAMESPACE = {"pubmed_xml": "pmid", "pubtator": "pmid", "pmc_jats": "pmc"}


@dataclass(frozen=True)
class RecordEvents:
    """One part's records in catalog order: where they start, their ids, revision dates and deletions."""

    offset: int
    namespace: str
    ids: list[str]
    revised: list[int]
    deleted: list[str]


def apply_record_identity(events: list[RecordEvents], alive: np.ndarray) -> tuple[int, int]:
    """Clear `alive` for every superseded or deleted record; return (deleted, superseded) counts."""
    latest: dict[str, tuple[int, int]] = {}  # key -> (catalog index, revision date) of the current version
    deleted = superseded = 0
    for event in events:
        revised = event.revised or [0] * len(event.ids)
        for position, (doc_id, version) in enumerate(zip(event.ids, revised, strict=True)):
            key, index = f"{event.namespace}:{doc_id}", event.offset + position
            previous = latest.get(key)
            if previous is None:
                latest[key] = (index, version)
                continue
            superseded += 1
            if version >= previous[1]:
                alive[previous[0]] = False
                latest[key] = (index, version)
            else:
                alive[index] = False
        for pmid in event.deleted:
            previous = latest.pop(f"pmid:{pmid}", None)
            if previous is not None and alive[previous[0]]:
                alive[previous[0]] = False
                deleted += 1
    return deleted, superseded
