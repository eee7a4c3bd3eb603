"""Benchmark: MEDLINE XML -> token shards, biomamba's pipeline vs a `datasets` baseline, on the same input.

Input: the real MEDLINE sample (../shared/data/pubmed/medline16n0902_sample.xml.gz) replicated into `--files`
gzip files until the uncompressed XML reaches `--size-mb` (PMIDs are renumbered per copy so that MEDLINE
update semantics do not collapse the copies; the texts repeat, so deduplication is switched OFF on both sides
to compare like for like: parse + clean + tokenize + pack).

- biomamba: `build_corpus` with `--workers` processes (one file per worker, streaming; shards + manifest).
- baseline: the common `datasets` recipe: `Dataset.from_generator` over the same parser, `.map(batched=True,
  num_proc=workers)` with the transformers fast tokenizer, then concatenation of all ids into one array.

Each side runs in its own process; the parent samples the RSS of the whole process tree (workers included)
every 50 ms with psutil and reports the peak. Tokens/s = tokens written / wall seconds of that process.
The markdown table is also appended to benchmarks/results/data.md (git-ignored; `--no-write` to skip), to be copied into BENCHMARKS.md.

    .venv/bin/python benchmarks/data_pipeline.py --size-mb 1100 --workers 16   # the issue's >1 GiB run
    .venv/bin/python benchmarks/data_pipeline.py --size-mb 8 --files 2 --no-write   # tiny smoke run (tests)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "pubmed" / "medline16n0902_sample.xml.gz"
RESULTS = ROOT / "benchmarks" / "results" / "data.md"


def make_input(folder: Path, size_mb: float, files: int, sample: Path = SAMPLE) -> tuple[list[Path], int]:
    """Replicate the sample (renumbering PMIDs per copy) into `files` .xml.gz files totalling ~size_mb."""
    raw = gzip.decompress(sample.read_bytes()).decode("utf-8")
    body = raw[raw.index("<MedlineCitation ") : raw.rindex("</MedlineCitationSet>")]
    body = re.sub(r"<DeleteCitation>.*?</DeleteCitation>", "", body, flags=re.S)
    header = raw[: raw.index("<MedlineCitation ")]
    copies = max(files, round(size_mb * 1e6 / len(body.encode())))
    paths = []
    total = 0
    for f in range(files):
        path = folder / f"pubmed{f:04d}.xml.gz"
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as handle:
            handle.write(header)
            for copy in range(f, copies, files):
                chunk = re.sub(r"<PMID Version=\"1\">(\d+)</PMID>",
                               lambda m, c=copy: f'<PMID Version="1">{c * 10**8 + int(m.group(1))}</PMID>', body)  # fmt: skip
                handle.write(chunk)
                total += len(chunk.encode())
            handle.write("</MedlineCitationSet>\n")
        paths.append(path)
    return paths, total


def train_bench_tokenizer(folder: Path, vocab_size: int) -> Path:
    from biomamba.data.config import SourceConfig
    from biomamba.data.readers import FileReport, read_source_file
    from biomamba.tokenizer.train import train_tokenizer

    source = SourceConfig(type="pubmed_xml", path=str(SAMPLE))
    texts = [d.text for d in read_source_file(str(SAMPLE), source, FileReport(str(SAMPLE)))]
    out = folder / "tokenizer"
    train_tokenizer(texts, vocab_size=vocab_size, output_dir=out)
    return out


# ---------------------------------------------------------------------------------------------------------
# The two sides (each runs in a fresh process: `python data_pipeline.py --side biomamba ...`)


def run_biomamba(files: list[str], tokenizer: str, out: str, workers: int) -> dict:
    from biomamba.data import DataConfig, build_corpus

    config = DataConfig.model_validate({
        "sources": {"pubmed": [{"type": "pubmed_xml", "path": files}]},
        "ratios": {"pubmed": 1.0}, "heldout_fraction": 0.0, "workers": workers,
        "dedup": {"exact": False, "near": False}, "decontam": {"enabled": False},
        "clean": {"min_chars": 0, "min_words": 0, "max_non_alnum_fraction": 1.0},
    })  # fmt: skip
    started = time.perf_counter()
    manifest = build_corpus(config, tokenizer, out)
    seconds = time.perf_counter() - started
    return {"tokens": manifest["splits"]["train"]["tokens"], "documents": manifest["splits"]["train"]["documents"],
            "seconds": seconds}  # fmt: skip


def run_datasets(files: list[str], tokenizer: str, out: str, workers: int) -> dict:
    import datasets
    import numpy as np
    from transformers import AutoTokenizer

    from biomamba.data.clean import normalize_text
    from biomamba.data.config import SourceConfig
    from biomamba.data.readers import FileReport, read_source_file

    datasets.disable_progress_bars()
    started = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(tokenizer)
    eos = tok.eos_token_id

    def generate(shards: list[str]):
        for path in shards:
            source = SourceConfig(type="pubmed_xml", path=path)
            for doc in read_source_file(path, source, FileReport(path)):
                yield {"id": doc.id, "text": normalize_text(doc.text)}

    cache = Path(out) / "hf_cache"
    dataset = datasets.Dataset.from_generator(generate, gen_kwargs={"shards": files}, cache_dir=str(cache),
                                              num_proc=min(workers, len(files)) if workers > 1 else None)  # fmt: skip

    def tokenize(batch: dict) -> dict:
        ids = tok(batch["text"], add_special_tokens=False)["input_ids"]
        return {"input_ids": [x + [eos] for x in ids]}

    tokenized = dataset.map(tokenize, batched=True, num_proc=workers if workers > 1 else None,
                            remove_columns=dataset.column_names)  # fmt: skip
    dtype = np.uint16 if len(tok) <= 2**16 else np.uint32
    column = tokenized.with_format("numpy")["input_ids"]
    flat = np.concatenate(list(column)).astype(dtype)
    flat.tofile(Path(out) / "baseline.bin")
    seconds = time.perf_counter() - started
    return {"tokens": int(flat.size), "documents": len(tokenized), "seconds": seconds}


# ---------------------------------------------------------------------------------------------------------
# Runner: one process per side, RSS of the process tree sampled by the parent


def measure(side: str, files: list[Path], tokenizer: Path, out: Path, workers: int) -> dict:
    import psutil

    args = [sys.executable, __file__, "--side", side, "--tokenizer", str(tokenizer), "--out", str(out),
            "--workers", str(workers), "--input", *map(str, files)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    root = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = peak / 2**20
    result["tokens_per_s"] = result["tokens"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size-mb", type=float, default=100.0, help="Uncompressed XML size to generate (MB)."
    )
    parser.add_argument("--files", type=int, default=8, help="Number of .xml.gz input files.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument(
        "--no-write", action="store_true", help="Do not append to benchmarks/results/data.md."
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--side", choices=["biomamba", "datasets"], help=argparse.SUPPRESS)
    parser.add_argument("--input", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        runner = run_biomamba if args.side == "biomamba" else run_datasets
        print(json.dumps(runner(args.input, args.tokenizer, args.out, args.workers)))
        return
    if not SAMPLE.is_file():
        sys.exit(f"sample not found: {SAMPLE}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = Path(tmp)
        files, xml_bytes = make_input(folder, args.size_mb, args.files)
        tokenizer = train_bench_tokenizer(folder, args.vocab_size)
        results = {}
        for side in ("datasets", "biomamba"):
            out = folder / f"out-{side}"
            out.mkdir()
            results[side] = measure(side, files, tokenizer, out, args.workers)
            print(side, json.dumps(results[side]))
    report = render(args, xml_bytes, results)
    print(report)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a", encoding="utf-8") as handle:
            handle.write(report)


def render(args: argparse.Namespace, xml_bytes: int, results: dict) -> str:
    ours, base = results["biomamba"], results["datasets"]
    cpu = platform.processor() or platform.machine()
    lines = [
        f"\n## data_pipeline: MEDLINE XML -> token shards ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n",
        f"- command: `.venv/bin/python benchmarks/data_pipeline.py --size-mb {args.size_mb:g} --files {args.files} "
        f"--workers {args.workers} --vocab-size {args.vocab_size}`",
        f"- machine: {os.cpu_count()} CPU cores ({cpu}); one run",
        f"- input: {xml_bytes / 2**20:.0f} MiB of uncompressed MEDLINE XML in {args.files} .xml.gz files "
        f"({ours['documents']:,} abstracts, {ours['tokens']:,} tokens with an {args.vocab_size}-token BPE)",
        "",
        "| pipeline | tokens | seconds | tokens/s | peak RSS (process tree) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in (("biomamba build_corpus", ours), ("datasets map + concatenate (baseline)", base)):
        lines.append(f"| {name} | {row['tokens']:,} | {row['seconds']:.1f} | {row['tokens_per_s']:,.0f} | "
                     f"{row['peak_rss_mb']:,.0f} MiB |")  # fmt: skip
    lines += ["", f"- throughput ratio biomamba / datasets: **{ours['tokens_per_s'] / base['tokens_per_s']:.2f}x**; "
              f"peak RSS ratio: **{ours['peak_rss_mb'] / base['peak_rss_mb']:.2f}x**", ""]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
