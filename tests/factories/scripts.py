"""Python files that are not in a package, imported as modules: the benchmark scripts (so a test runs their
tiny mode and they cannot rot) and task utilities shipped as loose files (lm-eval's)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"


def load_module(path: Path, name: str | None = None) -> ModuleType:
    """The file at `path` executed as a fresh module named `name` (default: its stem)."""
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def benchmark_script(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module."""
    return load_module(BENCHMARKS / f"{name}.py")


def invoke_cli(args: list[str | Path]):
    """`biomamba ARGS` run in this process by typer's CliRunner (the result's `exit_code`, `output`)."""
    from typer.testing import CliRunner

    from biomamba.cli.main import build_app

    return CliRunner().invoke(build_app(), [str(arg) for arg in args])


def run_cli(args: list[str | Path]) -> subprocess.CompletedProcess:
    """`python -m biomamba ARGS` in a fresh process, text captured: the exit status and stderr a user sees."""
    return subprocess.run([sys.executable, "-m", "biomamba", *map(str, args)], capture_output=True, text=True)


def lm_eval_task_module(relative: str) -> ModuleType:
    """A utility file of lm-eval's bundled tasks (`hellaswag/utils.py`) as a module: its own preprocessing."""
    import lm_eval

    return load_module(Path(lm_eval.__file__).parent / "tasks" / relative, relative.replace("/", "_"))


RUN_TINY = ROOT / "tests" / "train" / "run_tiny.py"


def torchrun(jobs: list[dict], nproc: int) -> None:
    """tests/train/run_tiny.py's `jobs` under `torchrun --standalone` with `nproc` CPU processes (gloo), one
    launch for all of them (the start-up is most of the cost); fails with the tail of the ranks' stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    done = subprocess.run(
        [*command, str(RUN_TINY), json.dumps({"jobs": jobs})], env=env, capture_output=True, timeout=240
    )
    assert done.returncode == 0, done.stderr.decode()[-4000:]


def run_main(argv: list[str | Path], capsys) -> tuple[int, str, str]:
    """`biomamba ARGV` through the real entry point `biomamba.cli.main.run` in this process (one-line errors,
    exit status as the shell sees it): (exit status, stdout, stderr), the output read from pytest's capsys."""
    import pytest

    from biomamba.cli.main import run

    with pytest.raises(SystemExit) as exit_info:
        run([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err
