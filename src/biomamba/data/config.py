"""Recipe schema of the `data:` section (registered as `biomamba.data.config:DataConfig`).

A corpus is described by DOMAINS (pubmed, c4, wikipedia, ...), each fed by one or more SOURCES (files of a
known format, or a `datasets` hub name), and by target RATIOS over domains counted in TOKENS, because that is
what a model sees: mixing by document counts gives other, unreported ratios (PubMed abstracts are short, web
pages long). Everything impossible (ratios not summing to 1, a ratio for a domain without sources, a
threshold outside (0, 1]) is a validator error, so the user gets one line naming the key.

Example (YAML):

    data:
      sources:
        pubmed:    [{type: pubmed_xml, path: data/pubmed/baseline}]
        c4:        [{type: jsonl, path: "data/c4/*.json.gz", text_field: text}]
        wikipedia: [{type: wikitext, path: data/wiki.raw}]
      ratios: {pubmed: 0.8, c4: 0.1, wikipedia: 0.1}
      heldout_fraction: 0.01
      decontam:
        benchmarks:
          - {name: pubmedqa, format: pubmedqa, path: data/pubmedqa/ori_pqal.json}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from biomamba.benchmarks.registry import FAMILIES
from biomamba.config.recipe import Section
from biomamba.errors import DataError


def _registered_source_type(name: str) -> str:
    """A type some reader registered (biomamba.data.readers), asked at validation time: a reader module added
    to the package, or registered later by a test or plugin, is accepted without an edit here. (Imported
    here, not above: the readers import this schema.)"""
    from biomamba.data.readers import get_reader

    try:
        return get_reader(name).name
    except DataError as exc:
        raise ValueError(str(exc)) from None


# Both derived from their registries (one home); an unknown value's message lists every registered one.
SourceType = Annotated[str, AfterValidator(_registered_source_type)]
BenchmarkFormat = Literal[tuple(FAMILIES)]  # type: ignore[valid-type]


class SourceConfig(Section):
    """One input of a domain.

    `path` is a file, a directory (every file inside, sorted) or a glob, or a list of those; for `type: hf`
    it is a `datasets` hub name (needs the network) or a local dataset directory.
    """

    type: SourceType
    path: str | list[str]
    text_field: str = "text"
    id_field: str | None = Field(
        None,
        description="JSON field holding a stable document id (default: 'id', else 'url', else file:line).",
    )
    hf_config: str | None = None
    hf_split: str = "train"
    max_documents: int | None = Field(None, gt=0, description="Read at most this many documents per file.")

    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)

    @field_validator("path")
    @classmethod
    def _non_empty(cls, value: str | list[str]) -> str | list[str]:
        if (isinstance(value, str) and not value.strip()) or (isinstance(value, list) and not value):
            raise ValueError("path must name at least one file, directory, glob or dataset")
        return value


class CleanConfig(Section):
    """Normalisation and document filters, applied before deduplication and decontamination."""

    normalize: bool = Field(True, description="Unicode NFC and whitespace collapsing (newlines kept).")
    min_chars: int = Field(50, ge=0)
    max_chars: int | None = Field(1_000_000, gt=0)
    min_words: int = Field(5, ge=0)
    max_non_alnum_fraction: float = Field(
        0.5, gt=0, le=1, description="Drop a document when more than this fraction of its characters are "
        "neither letters, digits nor whitespace (tables, markup debris)."
    )  # fmt: skip


class DedupConfig(Section):
    """Exact (normalised text hash) and near (MinHash LSH over word shingles) deduplication, global."""

    exact: bool = True
    near: bool = True
    threshold: float = Field(
        0.8, gt=0, le=1, description="Estimated Jaccard similarity that counts as near-dup."
    )
    num_perm: int = Field(128, ge=16, le=1024)
    shingle_words: int = Field(5, ge=1)


class BenchmarkConfig(Section):
    """An evaluation set read in its ORIGINAL release format (file or, for MMLU, a folder of CSVs)."""

    name: str
    format: BenchmarkFormat
    path: str


class DecontamConfig(Section):
    """n-gram overlap decontamination against evaluation sets (13-grams by default, as in GPT-3).

    Enabled with no `benchmarks` checks nothing: `build_corpus` then warns and records it in the manifest
    (`decontamination.warning`). A listed path that does not exist stops the build before any work, with one
    line naming `data.decontam.benchmarks.N.path` (checked at build time, not by `biomamba recipe check`, so
    recipes naming the user's downloads validate anywhere).
    """

    enabled: bool = True
    ngram: int = Field(13, ge=3, le=64)
    action: Literal["drop", "flag"] = "drop"
    benchmarks: list[BenchmarkConfig] = Field(default_factory=list)


class DataConfig(Section):
    """The `data:` recipe section: sources per domain, token ratios, splits, shards, filters."""

    sources: dict[str, list[SourceConfig]]
    ratios: dict[str, float] = Field(default_factory=lambda: {"pubmed": 0.8, "c4": 0.1, "wikipedia": 0.1})
    total_tokens: int | None = Field(
        None, gt=0, description="Training tokens to produce; default: the most possible without repeating "
        "any domain. When larger, small domains are repeated and the repeat count is reported."
    )  # fmt: skip
    heldout_fraction: float = Field(0.01, ge=0, lt=1)
    shard_tokens: int = Field(1 << 26, gt=0, description="Tokens per shard (documents are never split).")
    workers: int = Field(1, ge=1)
    seed: int = 0
    clean: CleanConfig = Field(default_factory=CleanConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)
    batch_documents: int = Field(256, gt=0, description="Documents per tokenizer batch in a worker.")
    keep_work: bool = Field(
        False, description="Keep the intermediate per-file parts after a successful build."
    )
    output_dir: str | None = Field(
        None, description="Corpus directory; default: <top-level output_dir>/corpus, else runs/<name>/corpus."
    )
    on_damaged: Literal["drop", "fail"] = Field(
        "drop", description="A .gz input failing its deflate/CRC check: drop the file whole (named and counted "
        "in the manifest) or stop the build with an error naming it."
    )  # fmt: skip

    @field_validator("sources")
    @classmethod
    def _has_sources(
        cls, value: dict[str, list[SourceConfig]], info: ValidationInfo
    ) -> dict[str, list[SourceConfig]]:
        if not value and not (info.context or {}).get("sources_filled_by_demo"):
            raise ValueError("at least one domain with sources is required")
        for domain, sources in value.items():
            if not sources:
                raise ValueError(f"domain '{domain}' has no sources")
            if not domain.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"domain name '{domain}' must be letters, digits, '-' or '_'")
        return value

    @model_validator(mode="after")
    def _ratios_match_sources(self, info: ValidationInfo) -> DataConfig:
        unknown = sorted(set(self.ratios) - set(self.sources))
        filled_later = not self.sources and (info.context or {}).get("sources_filled_by_demo")
        if unknown and not filled_later:
            raise ValueError(f"ratios name domains without sources: {', '.join(unknown)}")
        if any(r < 0 for r in self.ratios.values()):
            raise ValueError("ratios must be >= 0")
        total = sum(self.ratios.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"ratios must sum to 1 (they sum to {total:g})")
        return self


def stage_output_dir(raw: dict, section_output_dir: str | None, stage: str, fallback_name: str) -> Path:
    """Default output folder of a stage: its section's `output_dir`, else `<output_dir>/<stage>` under the
    recipe's top-level `output_dir`, else `runs/<name>/<stage>`: the layout `train` and `demo` use, so one
    recipe's tokenizer, corpus and run land side by side wherever the recipe puts them."""
    if section_output_dir:
        return Path(section_output_dir)
    name = raw.get("name") or fallback_name
    return Path(raw.get("output_dir") or f"runs/{name}") / stage
