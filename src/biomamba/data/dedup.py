"""Exact and near (MinHash LSH) deduplication.

Signatures are computed in the workers, next to tokenisation (`text_hash`, `minhash_signatures`), and the
global decision is taken once over all of them (`deduplicate`), so deduplication spans files, domains and
machines: the first occurrence in a deterministic order (domain, file, position) is kept. Near duplicates use
datasketch's MinHash LSH over word shingles; an LSH candidate is only counted as a duplicate when the
signatures' estimated Jaccard similarity reaches the threshold (LSH alone has false positives).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from biomamba.data.clean import words_for_matching

MINHASH_SEED = 1
MINHASH_SCHEME = "affine32"  # datasketch >= 2: 32-bit hash values, stored as uint32


def text_hash(text: str) -> int:
    """64-bit hash of the case- and whitespace-normalised text: equal hashes are exact duplicates."""
    canonical = " ".join(text.lower().split()).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(canonical, digest_size=8).digest(), "little")


def _shingles(text: str, size: int) -> list[bytes]:
    words = words_for_matching(text)
    if len(words) <= size:
        return [" ".join(words).encode("utf-8")]
    return [" ".join(words[i : i + size]).encode("utf-8") for i in range(len(words) - size + 1)]


def minhash_signatures(texts: Sequence[str], num_perm: int, shingle_words: int) -> np.ndarray:
    """MinHash signatures (uint32, [len(texts), num_perm]) with one shared permutation set (fast bulk path)."""
    from datasketch import MinHash

    if not texts:
        return np.zeros((0, num_perm), dtype=np.uint32)
    hashes = MinHash.bulk(
        [_shingles(t, shingle_words) for t in texts],
        num_perm=num_perm,
        seed=MINHASH_SEED,
        scheme=MINHASH_SCHEME,
    )
    return np.stack([h.hashvalues for h in hashes]).astype(np.uint32)


@dataclass
class DedupResult:
    """Which documents to keep, and why the others went."""

    keep: np.ndarray  # bool per document
    exact_duplicates: int = 0
    near_duplicates: int = 0
    by_domain: dict[str, dict[str, int]] = field(default_factory=dict)


def deduplicate(
    hashes: np.ndarray,
    signatures: np.ndarray | None,
    domains: Sequence[str],
    *,
    exact: bool,
    near: bool,
    threshold: float,
    alive: np.ndarray | None = None,
) -> DedupResult:
    """Keep the first occurrence of each exact and near duplicate group (in the given document order).

    `alive` marks documents still candidates (e.g. not deleted by a later DeleteCitation): others are ignored.
    """
    count = hashes.size
    keep = np.ones(count, dtype=bool) if alive is None else alive.copy()
    by_domain: dict[str, dict[str, int]] = {d: {"exact": 0, "near": 0} for d in dict.fromkeys(domains)}
    exact_count = near_count = 0
    if exact and count:
        order = np.flatnonzero(keep)
        _, first = np.unique(hashes[order], return_index=True)
        duplicate = np.ones(order.size, dtype=bool)
        duplicate[first] = False
        for index in order[duplicate]:
            by_domain[domains[index]]["exact"] += 1
        keep[order[duplicate]] = False
        exact_count = int(duplicate.sum())
    if near and signatures is not None and count:
        near_mask = _near_duplicates(signatures, keep, threshold)
        for index in np.flatnonzero(near_mask):
            by_domain[domains[index]]["near"] += 1
        keep &= ~near_mask
        near_count = int(near_mask.sum())
    return DedupResult(keep, exact_count, near_count, by_domain)


def _near_duplicates(signatures: np.ndarray, candidates: np.ndarray, threshold: float) -> np.ndarray:
    from datasketch import LeanMinHash, MinHashLSH

    num_perm = signatures.shape[1]
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    duplicate = np.zeros(signatures.shape[0], dtype=bool)
    for index in np.flatnonzero(candidates):
        signature = signatures[index]
        minhash = LeanMinHash(seed=MINHASH_SEED, hashvalues=signature, scheme=MINHASH_SCHEME)
        matches = lsh.query(minhash)
        if any(float(np.mean(signatures[m] == signature)) >= threshold for m in matches):
            duplicate[index] = True
            continue
        lsh.insert(int(index), minhash, check_duplication=False)
    return duplicate
