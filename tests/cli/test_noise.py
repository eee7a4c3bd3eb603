"""A command's stderr carries biomamba's own messages only: third-party start-up noise needs `--verbose`.

The commands run in a fresh interpreter, as a user runs them, so every library is imported the way the CLI
imports it (torchao comes in through transformers when a model loads).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.compress.helpers import save_tiny
from tests.factories.benchmarks import pubmedqa_records

REPO = Path(__file__).resolve().parents[2]
NOISE = {  # what the libraries print at start-up or on first use, as issue 15 quotes it
    "torchao .so": r"Failed to load .*torchao",
    "torch _pytree": r"_pytree\.py.*register_constant|is an Enum subclass",
    "transformers kernel fallback": r"falling back to its reference PyTorch implementation",
    "python warnings": r"(Future|Deprecation|User)Warning",
    "transformers notices": r"^\[transformers\]",
    "progress bars": r"Loading weights",
}


def _biomamba(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    for name in ("TORCH_LOGS", "TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS", "PYTHONWARNINGS"):
        env.pop(name, None)  # what a user's shell has: none of the quieting the CLI does itself
    command = [sys.executable, "-m", "biomamba.cli.main", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


def _noise(stderr: str) -> list[str]:
    return [name for name, pattern in NOISE.items() if re.search(pattern, stderr, re.MULTILINE)]


def test_commands_print_no_third_party_noise_unless_verbose(tmp_path: Path) -> None:
    model = save_tiny(tmp_path / "llama")
    questions = tmp_path / "ori_pqal.json"  # PubMedQA's own layout
    questions.write_text(json.dumps(pubmedqa_records(["yes", "no"], first_pmid=1)))

    verbose = _biomamba("--verbose", "generate", str(model), "the patient", "-n", "2")
    assert verbose.returncode == 0, verbose.stderr
    shown = _noise(verbose.stderr)
    if not shown:
        pytest.skip("this environment's libraries print none of the known start-up noise")

    generate = _biomamba("generate", str(model), "the patient", "-n", "2")
    assert generate.returncode == 0 and generate.stdout.strip(), generate.stderr
    out = tmp_path / "r.json"
    evaluate = _biomamba(
        "eval", "run", str(model), "--task-file", f"pubmedqa={questions}", "--output", str(out)
    )
    assert evaluate.returncode == 0 and out.is_file(), evaluate.stderr
    for run in (generate, evaluate):
        assert _noise(run.stderr) == [], f"{run.args[3:]} printed {_noise(run.stderr)}:\n{run.stderr}"
