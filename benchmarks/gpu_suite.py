"""Every GPU figure the issues ask for, in ONE device call of at most 8 minutes: one JSON + one markdown table.

What it measures, side by side on the same random weights (issue 16, and what issues 3, 5 and 8 left):
1. Mamba2 training step, 130m and 370m presets, bf16 autocast, seq 2048, fwd + bwd + AdamW, the largest batch
   that fits for each implementation (peak memory measured at batch 1 and 2, extrapolated, backed off on OOM):
   biomamba's torch scan, its torch.compile'd scan, biomamba with fla's and with mamba-ssm's Triton kernels,
   mamba-ssm's own model (the reference) and transformers' Mamba2. tokens/s, MFU = (6 x params + the SSD term,
   `biomamba.models.ssd.ssd_flops_per_token`) x tokens/s / peak, peak GiB.
2. biomamba's Trainer on the fastest biomamba backend vs the bare step (benchmarks/train_throughput.py).
3. GPT-2 124M in biomamba's Trainer vs transformers' Trainer, seq 1024.
4. Greedy decoding tokens/s, batch 1 and 32, Mamba2-130m vs transformers' generate (benchmarks/models_generate.py).
5. int8 / int4 decoding vs bf16 on the GPU (benchmarks/compress_quantize.py).
Each target of `TARGETS` that is missed gets a profile (top kernels by device time) beside it. Rows run in
priority order against a time budget (`--budget-s`); a row that cannot run (no CUDA, a package missing, the
budget spent, out of memory) is kept with its reason, so the tables say what is missing and why. The files are
rewritten after every row: a run cut short still leaves what it measured.

Prepare here (the device machine has no registry access), once; about 7.2 MiB, gitignored:

    .venv/bin/python benchmarks/gpu_suite.py --download-wheels .gpu-wheels

  fla-core 0.6.0 and torchao 0.18.0 (the int4 GPU kernel), pydantic (+ pydantic-core for CPython 3.12,
  annotated-types, typing-inspection: biomamba's configs; the device image lacks them), and mamba-ssm 2.3.2.post1
  built here without its CUDA extensions (a pure-Python wheel: its Mamba2 kernels are Triton; see
  ../shared/tools/mamba-ssm-reference-wheel.sh). Then, in one device call with carry [".gpu-wheels"]:

    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_suite.py --wheels .gpu-wheels --out $OUT --budget-s 450

  It installs the wheels the device lacks with --target into a temporary folder (never over its own torch or
  triton), applies mamba-ssm's two import fixes, and writes $OUT/gpu_suite.json and $OUT/gpu_suite.md.
  On CPU, in seconds (tests/benchmarks/test_gpu_suite.py): ``python benchmarks/gpu_suite.py --tiny --device cpu
  --out DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# fla keeps autotuning results on disk by default: a config tuned by the parity tests (other shapes) would be read
# back by the timed rows. Off, every process tunes its own kernels at the sizes it runs.
os.environ.setdefault("FLA_CACHE_RESULTS", "0")

# What --download-wheels fetches (pinned: the versions the suite was written against)
WHEELS = [
    "fla-core==0.6.0",
    "torchao==0.18.0",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
]
MAMBA_SSM = "mamba-ssm==2.3.2.post1"
DEVICE_PYTHON = "3.12"
# train-step implementations in the order they run; biomamba-* differ only in config.kernels
TRAIN_IMPLS = [
    "biomamba",
    "biomamba-fla",
    "biomamba-triton",
    "mamba-ssm",
    "biomamba-compile",
    "transformers",
]
KERNELS_OF = {
    "biomamba": "torch",
    "biomamba-compile": "torch_compile",
    "biomamba-fla": "fla",
    "biomamba-triton": "triton",
}
TARGETS = {
    "trainer_vs_bare": (0.90, "biomamba Trainer >= 90% of the bare step (issue 5)"),
    "gpt2_vs_transformers": (2.0, "GPT-2 124M: biomamba Trainer >= 2x transformers' Trainer (issue 5)"),
    "fastest_vs_reference": (1.0, "fastest biomamba backend >= mamba-ssm's reference model (issue 16)"),
}
MEMORY_MARGIN = 0.85  # fraction of the device memory a chosen batch may use by the extrapolation
MAX_BATCH = 64  # 131k tokens a step at seq 2048: enough to saturate the device, short enough to time


class Budget:
    """Wall-clock budget of the whole run; rows ask before they start and are cut by an alarm when late."""

    def __init__(self, seconds: float) -> None:
        self.start, self.seconds = time.monotonic(), seconds

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    @contextlib.contextmanager
    def limit(self, reserve: float = 15.0):
        """Raise TimeoutError inside the block when the budget (less ``reserve`` for writing) is spent."""
        seconds = int(self.left() - reserve)
        if seconds <= 0:
            raise TimeoutError("time budget spent")
        if not hasattr(signal, "SIGALRM"):
            yield
            return

        def on_alarm(signum: int, frame: Any) -> None:
            raise TimeoutError(f"cut by the time budget after {seconds} s")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(seconds)
        try:
            yield
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------------------------------- setup


def download_wheels(folder: Path, python: str = sys.executable) -> None:
    """Fetch the device's missing wheels (CPython 3.12, manylinux x86_64) and build mamba-ssm's here."""
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [
        "manylinux_2_28_x86_64",
        "manylinux_2_24_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
    ]
    command = [python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", DEVICE_PYTHON, "--implementation", "cp", "-d", str(folder)]
    command += [arg for p in platforms for arg in ("--platform", p)]
    subprocess.run(command + WHEELS, check=True)
    env = {**os.environ, "MAMBA_SKIP_CUDA_BUILD": "TRUE", "MAMBA_FORCE_BUILD": "TRUE"}
    build = [python, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(folder)]
    subprocess.run(build + [MAMBA_SSM], check=True, env=env)
    total = sum(p.stat().st_size for p in folder.glob("*.whl"))
    print(
        f"{len(list(folder.glob('*.whl')))} wheels, {total / 2**20:.1f} MiB in {folder}: carry [{str(folder)!r}]"
    )


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def install_wheels(folder: Path, site: Path) -> list[str]:
    """Install the carried wheels this Python lacks into ``site`` (put first on sys.path); returns their names.

    Present distributions are never replaced (the device's own torch, triton, transformers stay)."""
    missing = [w for w in sorted(folder.glob("*.whl")) if not _installed(w.name.split("-")[0])]
    if missing:
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
        subprocess.run(command + ["--target", str(site), *map(str, missing)], check=True)
        sys.path.insert(0, str(site))
        os.environ["PYTHONPATH"] = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
        importlib.invalidate_caches()
    mamba = site / "mamba_ssm"
    if mamba.is_dir():  # mamba-ssm 2.3.2 imports CUDA extensions unconditionally (fixed upstream, unreleased)
        (mamba / "__init__.py").write_text('__version__ = "2.3.2.post1"\n')
        scan = mamba / "ops" / "selective_scan_interface.py"
        scan.write_text(
            scan.read_text().replace("\nimport selective_scan_cuda\n", "\nselective_scan_cuda = None\n")
        )
    return [w.name.split("-")[0] for w in missing]


def load_benchmark(name: str) -> ModuleType:
    """A sibling benchmark script as a module (benchmarks/ is not a package): its code is the one home."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_reason(module: str, attribute: str) -> str | None:
    """None when ``module.attribute`` imports, else the one-line reason (kept in the row)."""
    try:
        getattr(importlib.import_module(module), attribute)
    except Exception as error:  # the reason is the result
        return f"{module} does not import: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
    return None


# ---------------------------------------------------------------------------------------------- train step


class Suite:
    """Runs the rows, keeps the results, and rewrites the JSON and markdown after each row."""

    def __init__(self, args: argparse.Namespace, budget: Budget) -> None:
        import torch

        self.args, self.budget, self.torch = args, budget, torch
        self.cuda = args.device.startswith("cuda")
        self.train_step = load_benchmark("models_train_step")
        self.results: dict[str, Any] = {
            "header": self._header(),
            "sections": {},
            "targets": [],
            "profiles": {},
        }

    # -- bookkeeping
    def _header(self) -> dict[str, Any]:
        torch = self.torch
        versions = {}
        for dist in ("torch", "triton", "transformers", "fla-core", "mamba-ssm", "torchao", "pydantic"):
            versions[dist] = importlib.metadata.version(dist) if _installed(dist) else None
        machine = torch.cuda.get_device_name() if self.cuda else (platform.processor() or platform.machine())
        return {
            "command": "python benchmarks/gpu_suite.py " + " ".join(self.args.argv),
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "device": self.args.device,
            "machine": machine,
            "python": platform.python_version(),
            "versions": versions,
            "budget_s": self.args.budget_s,
            "tiny": self.args.tiny,
            "installed_from_wheels": self.args.installed,
        }

    def add(self, section: str, row: dict[str, Any]) -> dict[str, Any]:
        self.results["sections"].setdefault(section, []).append(row)
        self.write()
        return row

    def write(self) -> None:
        from biomamba.utils.atomic import write_text

        self.results["header"]["wall_s"] = round(time.monotonic() - self.budget.start, 1)
        out = self.args.out
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "gpu_suite.json", json.dumps(self.results, indent=2, default=str) + "\n")
        write_text(out / "gpu_suite.md", render_markdown(self.results))

    def run_row(self, section: str, base: dict[str, Any], needs_s: float, fn: Callable[[], dict]) -> dict:
        """One row: skipped with a reason when the budget cannot hold it, its error kept when it fails."""
        left = self.budget.left()
        if left < needs_s:
            return self.add(
                section, {**base, "status": "skipped", "reason": f"time budget: {left:.0f} s left"}
            )
        started = time.monotonic()
        try:
            with self.budget.limit():
                row = {**base, **fn()}
            row.setdefault("status", "ok")
        except Exception as error:  # a failed row is a result: keep its reason and go on
            row = {**base, "status": "error", "reason": f"{type(error).__name__}: {str(error)[:300]}"}
        self._free()  # after the except block, whose traceback held the failed row's tensors
        row["seconds"] = round(time.monotonic() - started, 1)
        return self.add(section, row)

    def _free(self) -> None:
        import gc

        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()

    # -- section 1: the training step
    def unavailable(self, impl: str) -> str | None:
        """Why ``impl`` cannot run here (the row's recorded reason), or None."""
        if impl == "biomamba-compile" and not self.cuda:
            return "torch.compile on CPU: minutes of C++ build here (benchmarks/models_train_step.py measures it)"
        if impl == "biomamba-fla":
            if not self.cuda:
                return "fla-core: no CUDA (its kernels are Triton)"
            return import_reason("fla.ops.simple_gla", "chunk_simple_gla")
        if impl in ("biomamba-triton", "mamba-ssm"):
            if not self.cuda:
                return "mamba-ssm: no CUDA (its kernels are Triton)"
            return import_reason("mamba_ssm.ops.triton.ssd_combined", "mamba_chunk_scan_combined")
        return None

    def measure(self, impl: str, model_dir: Path, preset: str, batch: int, warmup: int, steps: int) -> dict:
        ns = argparse.Namespace(
            device=self.args.device, compile=False, vocab_size=None, seq_len=self.args.seq_len,
            bf16=self.cuda, warmup=warmup, steps=steps, peak_flops=1.0,
        )  # fmt: skip
        result = self.train_step.measure(impl, model_dir, ns, 1, batch)
        self._free()
        return result

    def largest_batch(self, impl: str, model_dir: Path, preset: str) -> tuple[int, dict]:
        """Peak memory at two batch sizes, extrapolated linearly to the device's memory (with a margin).

        The Triton kernels are probed at batch 4 and 8 rather than 1 and 2: they autotune at their first call
        and keep that choice, so the first call should already be a batch that fills the device."""
        if not self.cuda:
            return self.args.batch, {}
        small, large = (1, 2) if impl == "transformers" else (4, 8)
        one = self.measure(impl, model_dir, preset, small, 1, 1)
        two = self.measure(impl, model_dir, preset, large, 0, 1)
        if "error" in one:
            raise RuntimeError(f"batch {small} does not fit: {one['error']}")
        if "error" in two:
            return small, {"probe": [one, two], "step_s_per_row": one["step_s"] / small}
        total = self.torch.cuda.get_device_properties(0).total_memory / 2**30
        per_row = max((two["peak_mem_gib"] - one["peak_mem_gib"]) / (large - small), 1e-3)
        fixed = one["peak_mem_gib"] - small * per_row
        fit = int((MEMORY_MARGIN * total - fixed) / per_row)
        probe = {"gib_per_row": per_row, "gib_fixed": fixed, "step_s_per_row": two["step_s"] / large}
        return max(1, min(MAX_BATCH, fit)), probe

    def train_row(
        self, preset: str, impl: str, model_dir: Path, n_params: int, flops_per_token: float
    ) -> dict:
        reason = self.unavailable(impl)
        if reason:
            return {"status": "skipped", "reason": reason}
        rows = self.results["sections"].get(f"train {preset}", [])
        eager = next((r for r in rows if r["impl"] == "biomamba" and r.get("status") == "ok"), None)
        if impl == "biomamba-compile" and self.cuda:
            # same batch as the eager torch scan: probing other batches would recompile for each shape
            batch, probe = (eager["batch"] if eager else 8), {"batch_from": "biomamba"}
        else:
            batch, probe = self.largest_batch(impl, model_dir, preset)
        steps = eager["steps"] if impl == "biomamba-compile" and eager else self.args.steps
        if self.cuda and probe.get("step_s_per_row"):  # about 6 s of timed steps
            steps = max(2, min(self.args.steps, int(6.0 / max(probe["step_s_per_row"] * batch, 1e-3))))
        for _ in range(3):
            result = self.measure(impl, model_dir, preset, batch, self.args.warmup, steps)
            if result.get("error") != "out of memory" or batch == 1:
                break
            batch = max(1, int(batch * 0.75))
        if "error" in result:
            return {"status": "error", "reason": result["error"], "batch": batch}
        peak = self.peak_flops()
        mfu = result["tokens_per_s"] * flops_per_token / peak if peak else None
        return {
            "batch": batch, "steps": steps, "tokens_per_s": result["tokens_per_s"], "step_s": result["step_s"],
            "loss": result["loss"], "mfu": mfu, "peak_gib": result["peak_mem_gib"], "probe": probe,
        }  # fmt: skip

    def peak_flops(self) -> float | None:
        from biomamba.train.metrics import detect_peak_tflops

        peak = detect_peak_tflops(self.torch.device(self.args.device))
        return peak * 1e12 if peak else None

    def train_section(self, preset: str) -> None:
        from biomamba.models import create_model, save_model
        from biomamba.models.ssd import ssd_flops_per_token

        cfg = self.train_step._config(
            argparse.Namespace(tiny=self.args.tiny, preset=preset, n_layer=None, d_model=None, vocab_size=None,
                               chunk_size=None)
        )  # fmt: skip
        model = create_model(cfg, seed=0)
        n_params = model.num_parameters()
        flops = 6.0 * n_params + ssd_flops_per_token(cfg)
        section = f"train {preset}"
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(tmp) / "model"
            save_model(model, model_dir)
            del model
            for impl in TRAIN_IMPLS:
                base = {"impl": impl, "preset": preset, "params": n_params, "flops_per_token": flops,
                        "seq_len": self.args.seq_len}  # fmt: skip
                needs = 20.0 if self.cuda else 1.0
                self.run_row(
                    section, base, needs, lambda i=impl: self.train_row(preset, i, model_dir, n_params, flops)
                )
        self._ratios(section)
        self.results.setdefault("auto", {})[preset] = self.auto_order(section)
        self.write()

    def _ratios(self, section: str) -> None:
        rows = [r for r in self.results["sections"].get(section, []) if r.get("status") == "ok"]
        speed = {r["impl"]: r["tokens_per_s"] for r in rows}
        for r in rows:
            r["vs_reference"] = r["tokens_per_s"] / speed["mamba-ssm"] if "mamba-ssm" in speed else None
            r["vs_torch"] = r["tokens_per_s"] / speed["biomamba"] if "biomamba" in speed else None
        self.write()

    def fastest_biomamba(self, section: str) -> dict | None:
        rows = [r for r in self.results["sections"].get(section, []) if r.get("status") == "ok"]
        ours = [r for r in rows if r["impl"] in KERNELS_OF]
        return max(ours, key=lambda r: r["tokens_per_s"]) if ours else None

    def auto_order(self, section: str) -> dict[str, Any]:
        """Whether `auto`'s fixed preference (dispatch.AUTO_ORDER) matches the measured ranking."""
        from biomamba.models.kernels.dispatch import AUTO_ORDER

        rows = {r["impl"]: r for r in self.results["sections"].get(section, []) if r.get("status") == "ok"}
        impl_of = {kernels: impl for impl, kernels in KERNELS_OF.items()}
        measured = {k: rows[impl_of[k]]["tokens_per_s"] for k in AUTO_ORDER if impl_of[k] in rows}
        if len(measured) < 2:
            return {"auto_order": list(AUTO_ORDER), "measured": measured, "agrees": None}
        ranking = sorted(measured, key=measured.get, reverse=True)
        return {"auto_order": list(AUTO_ORDER), "measured": measured, "agrees": ranking == list(AUTO_ORDER)}

    # -- sections 2-5: the other benchmark scripts
    def trainer_section(self) -> None:
        throughput = load_benchmark("train_throughput")
        first = f"train {self.presets()[0]}"
        fastest = self.fastest_biomamba(first)
        kernels = KERNELS_OF[fastest["impl"]] if fastest else "auto"
        batch = fastest["batch"] if fastest else self.args.batch

        def mamba() -> dict:
            argv = self._trainer_argv("mamba2-130m", batch, self.args.seq_len) + [
                "--kernels",
                kernels,
                "--no-hf",
            ]
            for _ in range(3):
                try:
                    return throughput.main(argv)
                except self.torch.OutOfMemoryError:  # the Trainer holds more than the bare step: halve
                    pass
                self._free()  # out of the except block: its traceback no longer holds the tensors
                argv[argv.index("--batch") + 1] = str(max(1, int(argv[argv.index("--batch") + 1]) // 2))
            raise RuntimeError("out of memory at every batch tried")

        row = self.run_row(
            "trainer", {"model": "mamba2-130m", "kernels": kernels}, 30.0 if self.cuda else 1, mamba
        )
        self._target(
            "trainer_vs_bare", row.get("trainer_vs_bare"), self.profile_trainer, "mamba2-130m", kernels
        )

        def gpt2() -> dict:
            return throughput.main(self._trainer_argv("gpt2-124m", 16 if self.cuda else 2, 1024))

        row = self.run_row("trainer", {"model": "gpt2-124m", "kernels": "-"}, 40.0 if self.cuda else 1, gpt2)
        self._target(
            "gpt2_vs_transformers", row.get("biomamba_vs_transformers"), self.profile_trainer, "gpt2-124m"
        )

    def _trainer_argv(self, model: str, batch: int, seq_len: int) -> list[str]:
        if self.args.tiny:
            return ["--tiny", "--model", model, "--device", self.args.device]
        return ["--model", model, "--device", self.args.device, "--batch", str(batch), "--seq-len", str(seq_len),
                "--steps", "14", "--warmup", "4"]  # fmt: skip

    def decode_section(self) -> None:
        generate = load_benchmark("models_generate")
        argv = ["--device", self.args.device, "--batch", "1", "32", "--new-tokens", "256", "--preset", "130m"]
        if self.args.tiny:
            argv = ["--tiny", "--device", self.args.device, "--batch", "1", "2", "--new-tokens", "4"]

        def run() -> dict:
            return {"rows": generate.main(argv)}

        self.run_row(
            "decode",
            {"model": "mamba2-130m" if not self.args.tiny else "tiny"},
            30.0 if self.cuda else 1,
            run,
        )

    def quant_section(self) -> None:
        quantize = load_benchmark("compress_quantize")
        argv = ["--device", self.args.device, "--families", "mamba2", "--no-process-peak", "--size", "130m",
                "--new-tokens", "64", "--repeats", "2"]  # fmt: skip
        if self.args.tiny:
            argv = ["--tiny", "--device", self.args.device, "--families", "mamba2", "--no-process-peak"]

        def run() -> dict:
            rows = quantize.main(argv)["rows"]
            bf16 = next(r for r in rows if r["variant"] == "bf16")
            for r in rows:
                r["speed_vs_bf16"] = r["tokens_per_s"] / bf16["tokens_per_s"]
            return {"rows": rows}

        self.run_row("quantized decode", {"model": "mamba2-130m"}, 40.0 if self.cuda else 1, run)

    # -- targets and profiles
    def _target(self, name: str, value: float | None, profile: Callable[..., list], *args: Any) -> None:
        bar, text = TARGETS[name]
        entry = {
            "target": name,
            "text": text,
            "bar": bar,
            "value": value,
            "met": None if value is None else value >= bar,
        }
        self.results["targets"].append(entry)
        self.write()
        if entry["met"] is False:
            self.run_row(
                "profiles", {"target": name}, 25.0 if self.cuda else 1, lambda: {"top": profile(*args)}
            )

    def fastest_target(self) -> None:
        for preset in self.presets():
            section = f"train {preset}"
            fastest = self.fastest_biomamba(section)
            reference = next(
                (
                    r
                    for r in self.results["sections"].get(section, [])
                    if r["impl"] == "mamba-ssm" and r.get("status") == "ok"
                ),
                None,
            )
            value = fastest["tokens_per_s"] / reference["tokens_per_s"] if fastest and reference else None
            if fastest:
                self._target(
                    "fastest_vs_reference",
                    value,
                    self.profile_step,
                    preset,
                    fastest["impl"],
                    fastest["batch"],
                )

    def _top_kernels(self, fn: Callable[[], Any], rows: int = 10) -> list[dict]:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
        with profile(activities=activities) as prof:
            fn()
            if self.cuda:
                self.torch.cuda.synchronize()
        events = prof.key_averages()
        key = "self_device_time_total" if self.cuda else "self_cpu_time_total"
        ranked = sorted(events, key=lambda e: getattr(e, key, 0.0), reverse=True)[:rows]
        total = sum(getattr(e, key, 0.0) for e in events) or 1.0
        return [
            {
                "name": e.key[:90],
                "ms": getattr(e, key, 0.0) / 1e3,
                "share": getattr(e, key, 0.0) / total,
                "calls": e.count,
            }
            for e in ranked
        ]

    def profile_step(self, preset: str, impl: str, batch: int) -> list[dict]:
        from biomamba.models import create_model, save_model

        cfg = self.train_step._config(
            argparse.Namespace(tiny=self.args.tiny, preset=preset, n_layer=None, d_model=None, vocab_size=None,
                               chunk_size=None)
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(tmp) / "model"
            save_model(create_model(cfg, seed=0), model_dir)
            return self._top_kernels(lambda: self.measure(impl, model_dir, preset, batch, 1, 2))

    def profile_trainer(self, model: str, kernels: str = "auto") -> list[dict]:
        throughput = load_benchmark("train_throughput")
        batch = 16 if model.startswith("gpt2") else self.args.batch
        seq = 1024 if model.startswith("gpt2") else self.args.seq_len
        argv = self._trainer_argv(model, batch, seq)
        if not self.args.tiny:
            argv[argv.index("--steps") + 1], argv[argv.index("--warmup") + 1] = "6", "2"
        args = throughput.parse_args(argv + ["--kernels", kernels])
        device = self.torch.device(args.device)
        with tempfile.TemporaryDirectory() as tmp:
            tokens = (args.steps * args.batch + 2) * (args.seq_len + 1)
            corpus = throughput.write_corpus(Path(tmp) / "corpus", args.vocab, tokens)
            return self._top_kernels(lambda: throughput.biomamba_trainer(args, device, corpus, Path(tmp)))

    def parity_section(self) -> None:
        """The GPU-marked parity tests of the Triton kernels (fla, mamba-ssm) vs the torch scan, bf16 and fp32."""

        def run() -> dict:
            if not self.cuda:
                return {
                    "status": "skipped",
                    "reason": "no CUDA: the CPU suite runs them under Triton's interpreter",
                }
            tests = ["tests/models/test_kernels_parity.py", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
            done = subprocess.run(
                [sys.executable, "-m", "pytest", *tests], cwd=ROOT, capture_output=True, text=True, timeout=150,
                env={**os.environ, "PYTHONPATH": os.pathsep.join([os.environ.get("PYTHONPATH", ""), str(ROOT / "src")])},
            )  # fmt: skip
            summary = (done.stdout.strip().splitlines() or [""])[-1]
            status = "ok" if done.returncode == 0 else "error"
            return {"status": status, "reason": summary, "output_tail": (done.stdout + done.stderr)[-3000:]}

        self.run_row(
            "parity", {"tests": "tests/models/test_kernels_parity.py -m gpu"}, 60.0 if self.cuda else 0, run
        )

    def presets(self) -> list[str]:
        return ["tiny"] if self.args.tiny else ["130m", "370m"]

    def run(self) -> dict[str, Any]:
        first, *rest = self.presets()
        self.parity_section()
        self.train_section(first)
        self.trainer_section()
        self.decode_section()
        self.quant_section()
        for preset in rest:
            self.train_section(preset)
        self.fastest_target()
        self.write()
        return self.results


# ---------------------------------------------------------------------------------------------- markdown


def _num(value: Any, fmt: str = "{:,.0f}", none: str = "-") -> str:
    return none if value is None else fmt.format(value)


def _status(row: dict) -> str:
    return "ok" if row.get("status") == "ok" else f"{row.get('status')}: {row.get('reason', '')}"


def render_markdown(results: dict[str, Any]) -> str:
    """The tables BENCHMARKS.md takes as they are."""
    from biomamba.utils.markdown import markdown_table

    h = results["header"]
    versions = ", ".join(f"{k} {v}" for k, v in h["versions"].items() if v)
    lines = [
        f"`{h['command']}`, {h['date']}, {h['machine']} ({h['device']}), Python {h['python']}, {versions}; "
        f"wall {h.get('wall_s', '-')} s of a {h['budget_s']} s budget.",
        "",
    ]
    sections = results["sections"]
    for name, rows in sections.items():
        if not name.startswith("train "):
            continue
        lines += [f"**Training step, {name.removeprefix('train ')}** (fwd + bwd + AdamW, seq {rows[0]['seq_len']}, "
                  f"bf16 autocast on CUDA; {rows[0]['params']:,} params, {rows[0]['flops_per_token'] / 1e9:.2f} "
                  "GFLOP/token with the SSD term)", ""]  # fmt: skip
        cells = [[r["impl"], _num(r.get("batch"), "{}"), _num(r.get("tokens_per_s")),
                  _num(r.get("vs_reference"), "{:.2f}x"), _num(r.get("vs_torch"), "{:.2f}x"),
                  _num(r.get("mfu"), "{:.1%}"), _num(r.get("peak_gib"), "{:.1f}"), _status(r)] for r in rows]  # fmt: skip
        head = "impl | batch | tokens/s | vs mamba-ssm | vs biomamba torch | MFU | peak GiB | status"
        lines += markdown_table(head.split(" | "), cells, align="lrrrrrrl")
        auto = results.get("auto", {}).get(name.removeprefix("train "))
        if auto:
            lines += ["", f"`auto` prefers {' > '.join(auto['auto_order'])}; measured {auto['measured']}; "
                      f"agrees: {auto['agrees']}"]  # fmt: skip
        lines.append("")
    if "trainer" in sections:
        head = ("model | kernels | batch | seq | bare tokens/s | biomamba Trainer tokens/s | Trainer / bare | "
                "transformers Trainer tokens/s | biomamba / transformers | status")  # fmt: skip
        cells = [[r["model"], r.get("kernels", "-"), _num(r.get("batch"), "{}"), _num(r.get("seq_len"), "{}"),
                  _num(r.get("bare_tokens_per_s")), _num(r.get("biomamba_tokens_per_s")),
                  _num(r.get("trainer_vs_bare"), "{:.2f}x"), _num(r.get("transformers_tokens_per_s")),
                  _num(r.get("biomamba_vs_transformers"), "{:.2f}x"), _status(r)] for r in sections["trainer"]]  # fmt: skip
        lines += [
            "**Trainers** (train_throughput.py)",
            "",
            *markdown_table(head.split(" | "), cells, "llrrrrrrrl"),
            "",
        ]
    for r in sections.get("decode", []):
        head = "batch | new tokens | biomamba tok/s | transformers tok/s | speed-up | same tokens".split(
            " | "
        )
        cells = [[d["batch"], d["new_tokens"], _num(d["biomamba_tokens_per_s"]), _num(d["transformers_tokens_per_s"]),
                  f"{d['speedup']:.2f}x", f"{d['same_tokens_fraction']:.0%}"] for d in r.get("rows", [])]  # fmt: skip
        lines += ["**Greedy decoding** (models_generate.py)", "", *markdown_table(head, cells, "rrrrrr")]
        if r.get("status") != "ok":
            lines.append(f"| {_status(r)} | | | | | |")
        lines.append("")
    for r in sections.get("quantized decode", []):
        head = "variant | kernel | tok/s | vs bf16 | weight MiB | status".split(" | ")
        cells = [[q["variant"], q["backend"], f"{q['tokens_per_s']:.1f}", f"{q['speed_vs_bf16']:.2f}x",
                  f"{q['weight_bytes'] / 2**20:.1f}", "ok"] for q in r.get("rows", [])]  # fmt: skip
        lines += [
            "**Quantized decoding** (compress_quantize.py, batch 1)",
            "",
            *markdown_table(head, cells, "llrrrl"),
        ]
        if r.get("status") != "ok":
            lines.append(f"| - | - | - | - | - | {_status(r)} |")
        lines.append("")
    for r in sections.get("parity", []):
        lines += [f"**Kernel parity** (`{r['tests']}`): {r.get('status')}: {r.get('reason', '')}", ""]
    if results["targets"]:
        met = {True: "met", False: "**missed** (profile below)", None: "not measured"}
        cells = [[t["text"], _num(t["value"], "{:.2f}x"), f"{t['bar']:.2f}x", met[t["met"]]] for t in results["targets"]]  # fmt: skip
        lines += ["**Targets**", "", *markdown_table(["target", "value", "bar", "met"], cells, "lrrl"), ""]
    for r in sections.get("profiles", []):
        lines += [f"**Profile for {r['target']}** (top kernels by self device time; CPU time on CPU)", ""]
        if r.get("status") != "ok":
            lines += [_status(r), ""]
            continue
        cells = [[f"`{k['name']}`", f"{k['ms']:.1f}", f"{k['share']:.1%}", k["calls"]] for k in r["top"]]
        lines += markdown_table(["kernel", "ms", "share", "calls"], cells, "lrrr")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, help="folder for gpu_suite.json and gpu_suite.md ($OUT there)")
    parser.add_argument("--wheels", type=Path, default=None, help="carried wheels to install first (device)")
    parser.add_argument(
        "--download-wheels", type=Path, default=None, help="fetch the wheels into DIR and stop"
    )
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    parser.add_argument("--budget-s", type=float, default=450.0, help="wall-clock budget of the whole run")
    parser.add_argument("--tiny", action="store_true", help="test-sized models, seconds on CPU")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=10, help="most timed steps per training row")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="batch where none is searched (CPU, trainer)")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.download_wheels is None and args.out is None:
        parser.error("--out is required")
    if args.tiny:
        args.seq_len, args.steps, args.warmup, args.batch = 64, 2, 1, 2
    return args


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.download_wheels is not None:
        download_wheels(args.download_wheels)
        return None
    budget = Budget(args.budget_s)
    site = Path(tempfile.mkdtemp(prefix="gpu-suite-site-"))
    args.installed = install_wheels(args.wheels, site) if args.wheels else []
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    results = Suite(args, budget).run()
    print((args.out / "gpu_suite.md").read_text())
    return results


if __name__ == "__main__":
    main()
