"""Task files from the Hugging Face hub (when online): `--task-file arc_easy=hub:allenai/ai2_arc:ARC-Easy:test`.

The hub copies of these benchmarks use other layouts than the original releases; biomamba.benchmarks reads
those layouts directly (detected from their columns). Each split is downloaded once with `datasets`, kept as
parquet with the hub's columns under `$BIOMAMBA_CACHE/eval/hub/` (default `~/.cache/biomamba`), and read
like any local export.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from biomamba.errors import DataError
from biomamba.utils.atomic import atomic_write

PREFIX = "hub:"


def is_hub(path: str | Path) -> bool:
    return str(path).startswith(PREFIX)


def parse_hub(spec: str) -> tuple[str, str | None, str]:
    """`hub:PATH[:CONFIG[:SPLIT]]` -> (dataset path, config or None, split; default "test")."""
    parts = spec[len(PREFIX) :].split(":")
    if not parts[0] or len(parts) > 3:
        raise DataError(
            f"{spec}: expected hub:DATASET[:CONFIG[:SPLIT]], e.g. hub:allenai/ai2_arc:ARC-Easy:test"
        )
    config = parts[1] if len(parts) > 1 and parts[1] else None
    split = parts[2] if len(parts) > 2 and parts[2] else "test"
    return parts[0], config, split


def cache_dir() -> Path:
    return Path(os.environ.get("BIOMAMBA_CACHE", Path.home() / ".cache" / "biomamba")) / "eval" / "hub"


def _write_parquet(target: Path, rows: list[dict[str, Any]]) -> None:
    """The split as a parquet file with the hub's own columns, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_write(target, "wb") as handle:
        pq.write_table(pa.Table.from_pylist(rows), handle)


def materialize(task: str, spec: str) -> Path:
    """Local parquet copy of a hub split (downloaded once, then read from the cache).

    The rows keep the hub's column names: biomamba.benchmarks reads the hub layouts (allenai/ai2_arc,
    openlifescienceai/medmcqa with its 0-based `cop`, cais/mmlu, bigbio/pubmed_qa, ...) as formats of their
    own, so a hub copy gets the same checks and prompts as a local file without a conversion step.
    """
    path, config, split = parse_hub(spec)
    if "bioasq" in task:
        raise DataError("BioASQ is not distributed on the hub: download the Task B golden files (bioasq.org)")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{task}__{path}__{config or 'default'}__{split}")
    target = cache_dir() / (name + ".parquet")
    if target.is_file():
        return target
    import datasets

    try:
        dataset = datasets.load_dataset(path, config, split=split)
    except Exception as exc:  # offline, unknown name, missing split: one line for the user
        raise DataError(f"{spec}: cannot load from the hub ({str(exc).splitlines()[0]})") from None
    _write_parquet(target, [dict(r) for r in dataset])
    return target
