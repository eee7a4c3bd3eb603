"""CLI commands of the data stage (mounted by biomamba.cli.main): `biomamba data build|inspect|decontaminate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from biomamba.config.command_line import PRECEDENCE, command_group, load_stage_config, set_option
from biomamba.errors import BiomambaError, DataError

HELP = "Corpus pipeline: raw PubMed/PMC/C4/Wikipedia -> clean, decontaminated, mixed token shards."

BUILD_HELP = """Build a training corpus from RECIPE's `data:` section: read the sources, clean, deduplicate,
decontaminate against the benchmarks, split off held-out documents, mix by TOKEN ratios, tokenize with
--tokenizer (or the recipe's tokenizer.name_or_path) and write token shards + manifest.json.

Re-running resumes: finished per-file parts and shards are reused. To spread the work over machines run
`--part i/n` on each (same recipe and file paths), copy the `.work/parts/` folders into one output directory
and run once more without --part (docs/data.md). On a shared filesystem the dedup can be spread as well:
after every part is built, `--dedup-part j/m` on each machine, then the merge (docs/data.md, Slurm)."""


def _parse_part(part: str | None, flag: str = "--part") -> tuple[int, int] | None:
    if part is None:
        return None
    try:
        index, count = (int(x) for x in part.split("/"))
    except ValueError:
        raise BiomambaError(f"{flag} {part}: expected I/N, e.g. {flag} 0/4") from None
    return index, count


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    data_app = command_group(app, "data", HELP)

    @data_app.command("build", help=BUILD_HELP, epilog=PRECEDENCE)
    def build(
        recipe: Path = typer.Argument(..., help="Recipe YAML with a `data:` section."),
        tokenizer: str = typer.Option(
            None, help="Tokenizer directory or hub name (default: tokenizer.name_or_path)."
        ),
        output_dir: Path = typer.Option(
            None,
            help="Corpus directory (default: data.output_dir, else <output_dir>/corpus, else runs/<name>/corpus).",
        ),
        workers: int = typer.Option(None, help="Worker processes for tokenizing files and writing shards."),
        seed: int = typer.Option(None, help="Seed of the mixture sampling and shuffling."),
        heldout_fraction: float = typer.Option(None, help="Fraction of documents held out per domain."),
        total_tokens: int = typer.Option(
            None, help="Training tokens to produce (small domains are repeated)."
        ),
        part: str = typer.Option(
            None, help="Only build the per-file parts I/N (multi-machine runs), then stop."
        ),
        dedup_part: str = typer.Option(
            None,
            help="Once every part is built: only resolve dedup bucket part I/N into its findings, then stop.",
        ),
        set_: list[str] = set_option("data.dedup.threshold=0.9"),
    ) -> None:
        from biomamba.data.config import DataConfig, stage_output_dir
        from biomamba.data.pipeline import build_corpus

        flags = {"data.workers": workers, "data.seed": seed, "data.heldout_fraction": heldout_fraction,
                 "data.total_tokens": total_tokens, "tokenizer.name_or_path": tokenizer}  # fmt: skip
        config, raw = load_stage_config(recipe, "data", DataConfig, flags, set_)
        tok = (raw.get("tokenizer") or {}).get("name_or_path")
        if not tok:
            raise BiomambaError(f"{recipe}: no tokenizer: pass --tokenizer or set tokenizer.name_or_path")
        out = output_dir or stage_output_dir(raw, config.output_dir, "corpus", recipe.stem)
        if part is not None and dedup_part is not None:
            raise BiomambaError("--part and --dedup-part: one step at a time (parts first, then dedup parts)")
        result = build_corpus(config, tok, out, only_part=_parse_part(part),
                              dedup_part=_parse_part(dedup_part, "--dedup-part"), progress=typer.echo)  # fmt: skip
        if dedup_part is not None:
            return
        if part is not None:
            typer.echo(f"built {len(result['parts'])} parts under {out}/.work/parts in {result['seconds']}s")
            return
        _print_summary(result, out)

    @data_app.command("inspect")
    def inspect(
        corpus: Path = typer.Argument(..., help="Corpus directory (contains manifest.json)."),
        as_json: bool = typer.Option(False, "--json", help="Print the whole manifest as JSON."),
    ) -> None:
        """Summarise a built corpus: splits, achieved vs target ratios, dedup, decontamination, skipped records."""
        from biomamba.data.shards import read_manifest

        manifest = read_manifest(corpus)
        if as_json:
            typer.echo(json.dumps(manifest, indent=2, ensure_ascii=False))
            return
        _print_summary(manifest, corpus)

    @data_app.command("decontaminate")
    def decontaminate(
        recipe: Path = typer.Argument(..., help="Recipe whose data.decontam.benchmarks are indexed."),
        inputs: list[str] = typer.Argument(..., help="Files to check (any source type, see --type)."),
        source_type: str = typer.Option(
            None,
            "--type",
            help="A source type of data.sources (biomamba.data.readers; default: from the content).",
        ),
        text_field: str = typer.Option("text", help="JSON field with the text (jsonl)."),
        output: Path = typer.Option(None, help="Write the per-benchmark report as JSON here."),
    ) -> None:
        """Report which documents of INPUTS share an n-gram with the recipe's benchmarks (INPUTS are not changed).

        A file from which no document could be read is an error (exit status 2), never reported as clean."""
        from biomamba.data.config import DataConfig
        from biomamba.data.decontam import NgramIndex
        from biomamba.data.readers import get_reader
        from biomamba.utils.atomic import write_json

        if source_type is not None:  # a misspelt --type is one line before the index is built
            get_reader(source_type)

        config, _ = load_stage_config(recipe, "data", DataConfig, {}, None)
        index = NgramIndex.build(config.decontam)
        report: dict[str, Any] = {"ngram": index.n, "benchmarks": index.stats, "documents": 0, "matches": {},
                                  "files": {}}  # fmt: skip
        overlapping: set[tuple[str, str]] = set()
        for path in inputs:
            for doc in _checked_documents(path, source_type, text_field, report):
                for name in index.matches(doc.text):
                    report["matches"].setdefault(name, []).append(doc.id)
                    overlapping.add((path, doc.id))
        report["overlapping_documents"] = len(overlapping)
        for name, stats in index.stats.items():
            hits = report["matches"].get(name, [])
            typer.echo(f"{name}: {len(hits)} of {report['documents']} documents overlap "
                       f"({stats['texts']} benchmark texts, {stats['ngrams']} {index.n}-grams)")  # fmt: skip
        typer.echo(f"any benchmark: {len(overlapping)} of {report['documents']} documents overlap")
        if output:
            write_json(output, report)


def _checked_documents(path: str, source_type: str | None, text_field: str, report: dict) -> Any:
    """The documents of one input of `data decontaminate`, its type detected unless given; a file that gives
    no document at all is an error naming it and why, so that it is never reported as clean."""
    from biomamba.data.config import SourceConfig
    from biomamba.data.readers import FileReport, detect_source_type, read_verified_file

    kind = source_type or detect_source_type(path)
    source = SourceConfig.model_validate({"type": kind, "path": path, "text_field": text_field})
    read = FileReport(path)
    yield from read_verified_file(path, source, read)
    report["documents"] += read.documents
    report["files"][path] = {"type": kind, **read.to_json()}
    if read.documents == 0:
        reasons = ", ".join(f"{k} x{v}" for k, v in read.skipped.most_common(3)) or "no records"
        raise DataError(f"{path}: no documents read as {kind} ({reasons}): nothing was checked")


_ACTION_DONE = {"drop": "dropped", "flag": "flagged"}


def _print_summary(manifest: dict, corpus: Path) -> None:
    typer.echo(f"corpus {corpus} ({manifest.get('dtype')}, vocab {manifest.get('vocab_size')})")
    for name, split in manifest.get("splits", {}).items():
        typer.echo(f"  {name}: {split['tokens']:,} tokens, {split['documents']:,} documents, "
                   f"{len(split['shards'])} shards")  # fmt: skip
    mixture = manifest.get("mixture", {})
    for domain, row in mixture.get("domains", {}).items():
        typer.echo(f"  {domain}: target {row['target']:.1%} achieved {row['achieved']:.2%} "
                   f"(repeat x{row['repeat_factor']:.2f}, {row['tokens']:,} tokens)")  # fmt: skip
    if mixture:
        typer.echo(f"  {mixture['summary']}")
    dedup = manifest.get("dedup", {})
    typer.echo(
        f"  dedup: {dedup.get('exact_duplicates', 0)} exact, {dedup.get('near_duplicates', 0)} near duplicates"
    )
    decontam = manifest.get("decontamination", {})
    done = _ACTION_DONE.get(decontam.get("action", ""), decontam.get("action"))
    for name, stats in decontam.get("benchmarks", {}).items():
        typer.echo(f"  decontamination {name}: {stats['documents_matched']} documents overlap")
    if decontam.get("enabled") and "documents_matched" in decontam:  # (older manifests lack the unique count)
        ids = f", ids in {corpus / decontam['ids_file']}" if decontam.get("ids_file") else ""
        typer.echo(f"  decontamination: {decontam.get('documents_matched', 0)} documents {done} "
                   f"(overlapping any benchmark{ids})")  # fmt: skip
    if manifest.get("decontamination", {}).get("warning"):
        typer.echo(f"  WARNING: {manifest['decontamination']['warning']}")
    skipped = manifest.get("skipped", {})
    if skipped.get("total"):
        typer.echo(f"  skipped records: {skipped['total']} {skipped['by_reason']}")
        for warning in skipped.get("warnings", [])[:10]:
            typer.echo(f"    warning: {warning}")
