"""Benchmark: reading real benchmark files into questions, this tree vs a baseline tree, in one run.

Times `load_questions` on the real PubMedQA files of ../shared/data (PQA-L `ori_pqal.json`, 1000 records,
and the official 500-question test split) for each source tree given (`--src`, default this tree and
/work/main/src), each in its own process with that tree first on PYTHONPATH, best of `--repeat`. The first
tree is the baseline of the printed ratios. Reading used to locate every PubMedQA record by searching the
whole file from its start (quadratic in the file); biomamba.benchmarks searches forward from the last record.

    .venv/bin/python benchmarks/benchmark_formats.py                       # this tree vs /work/main/src
    .venv/bin/python benchmarks/benchmark_formats.py --src src --repeat 1  # smoke run (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "pubmedqa"
CHILD = """
import json, sys, time
from pathlib import Path
from biomamba.eval.tasks import TaskFile, load_questions
data, repeat = Path(sys.argv[1]), int(sys.argv[2])
best = float("inf")
for _ in range(repeat):
    start = time.perf_counter()
    n = len(load_questions(TaskFile("pubmedqa", data / "ori_pqal.json")))
    n += len(load_questions(TaskFile("pubmedqa_test", data)))
    best = min(best, time.perf_counter() - start)
print(json.dumps({"questions": n, "seconds": best}))
"""


def measure(src: Path, repeat: int) -> dict:
    """Best wall time of one tree's reading, in a fresh process (no import cache shared between trees)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(DATA), str(repeat)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", nargs="+", type=Path, default=[Path("/work/main/src"), ROOT / "src"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rows = [{"src": str(src), **measure(src, args.repeat)} for src in args.src]
    base = rows[0]["seconds"]
    print("| source tree | questions | seconds (best) | speed vs first |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['src']} | {row['questions']} | {row['seconds']:.3f} | {base / row['seconds']:.1f}x |")
    return rows


if __name__ == "__main__":
    main()
