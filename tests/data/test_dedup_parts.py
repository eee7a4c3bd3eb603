"""A build spread over machines in three steps (parse parts -> dedup parts -> merge) through the CLI gives the
corpus of a one-process build, byte for byte; a missing step is one line naming it, exit status 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from tests.factories.corpora import random_documents, write_jsonl, write_texts
from tests.factories.scripts import invoke_cli, run_cli

from biomamba.data import DataConfig, build_corpus, read_manifest
from biomamba.errors import DataError

from .test_dedup_buckets import _corpus


@pytest.fixture
def recipe(tmp_path: Path, tiny_tokenizer: Path) -> Path:
    """Three files of one domain (the later ones full of copies and edits of the first) plus a web domain."""
    texts = _corpus(150)
    files = [write_texts(tmp_path / "src" / f"{name}.jsonl", chunk, name)
             for name, chunk in (("a", texts[:150]), ("b", texts[150:190]), ("c", texts[190:]))]  # fmt: skip
    web = write_jsonl(tmp_path / "src" / "web.jsonl", random_documents("c4", 60, seed=4, min_words=40))
    data = {"sources": {"pubmed": [{"type": "jsonl", "path": [str(f) for f in files]}],
                        "web": [{"type": "jsonl", "path": str(web)}]},
            "ratios": {"pubmed": 0.7, "web": 0.3}, "heldout_fraction": 0.1, "shard_tokens": 4000,
            "decontam": {"enabled": False}}  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(
        yaml.safe_dump({"name": "t", "data": data, "tokenizer": {"name_or_path": str(tiny_tokenizer)}})
    )
    return path


def _build(recipe: Path, out: Path, *flags: str) -> str:
    result = invoke_cli(["data", "build", recipe, "--output-dir", out, *flags])
    assert result.exit_code == 0, result.output
    return result.output


def _shard_bytes(corpus: Path) -> dict[str, bytes]:
    return {str(p.relative_to(corpus)): p.read_bytes() for p in sorted(corpus.rglob("shard-*"))}


def _parts_and_dedup_parts(recipe: Path, out: Path, dedup_parts: list[int], of: int) -> None:
    for part in range(2):
        _build(recipe, out, "--part", f"{part}/2", "--workers", "2")
    for index in dedup_parts:
        _build(recipe, out, "--dedup-part", f"{index}/{of}")


def test_parts_then_dedup_parts_then_merge_give_the_one_process_corpus_byte_for_byte(recipe, tmp_path):
    _build(recipe, tmp_path / "single")
    single = read_manifest(tmp_path / "single")
    assert single["dedup"]["exact_duplicates"] > 0 and single["dedup"]["near_duplicates"] > 0
    out = tmp_path / "spread"
    _parts_and_dedup_parts(recipe, out, [0, 1, 2], 3)
    assert "(reused)" in _build(recipe, out, "--dedup-part", "1/3")  # idempotent: resubmitting a task is free
    findings = sorted(p.name for p in (out / ".work" / "dedup-parts").iterdir())
    assert findings == [f"findings-000{i}-of-0003.npz" for i in range(3)]
    assert "dedup: the findings of 3 dedup part(s) read" in _build(recipe, out, "--workers", "2")
    spread = read_manifest(out)
    assert spread["dedup"] == single["dedup"] and spread["splits"] == single["splits"]
    assert _shard_bytes(out) == _shard_bytes(tmp_path / "single") != {}


def test_a_missing_dedup_part_stops_the_merge_with_one_line_naming_it(recipe, tmp_path):
    out = tmp_path / "spread"
    _parts_and_dedup_parts(recipe, out, [0, 2], 3)
    proc = run_cli(["data", "build", recipe, "--output-dir", out])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "dedup part(s) 1/3 missing (2 of 3 found)" in lines[0] and "--dedup-part" in lines[0]
    assert not (out / "manifest.json").exists() and not list(out.rglob("shard-*"))


def test_a_dedup_part_before_every_part_is_built_names_the_missing_file(recipe, tmp_path):
    out = tmp_path / "spread"
    _build(recipe, out, "--part", "0/2")
    raw = yaml.safe_load(recipe.read_text())
    config = DataConfig.model_validate(raw["data"])
    with pytest.raises(DataError, match=r"b\.jsonl: part pubmed-00-00001 not built \(2 of 4 parts missing\)"):
        build_corpus(config, raw["tokenizer"]["name_or_path"], out, dedup_part=(0, 2))
    with pytest.raises(DataError, match="--dedup-part 2/2: expected 0 <= i < n"):
        build_corpus(config, raw["tokenizer"]["name_or_path"], out, dedup_part=(2, 2))
    assert not (out / ".work" / "dedup-parts").exists()


def test_findings_of_other_inputs_are_not_used(recipe, tmp_path):
    """Dedup parts resolved before an input changed are stale: the merge resolves again instead of using them."""
    out = tmp_path / "spread"
    _parts_and_dedup_parts(recipe, out, [0, 1], 2)
    source = tmp_path / "src" / "c.jsonl"
    lines = source.read_text().splitlines(keepends=True)
    source.write_text("".join(lines[: len(lines) // 2]))  # drop the second half of the copies
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    assert "dedup: buckets resolved in this process" in _build(recipe, out)
    _build(recipe, tmp_path / "single")
    merged, single = read_manifest(out), read_manifest(tmp_path / "single")
    assert merged["dedup"] == single["dedup"] and _shard_bytes(out) == _shard_bytes(tmp_path / "single")
