"""The Triton backends against biomamba's torch scan: ``kernels: fla`` (fla-core's ``chunk_simple_gla``) and
``kernels: triton`` (mamba-ssm's ``mamba_chunk_scan_combined``), their real kernels, outputs and every gradient,
packed documents (fla: cu_seqlens; mamba-ssm: seq_idx), grouped B/C, dt bias and softplus.

On CPU the kernels run under Triton's interpreter (``TRITON_INTERPRET=1``) in a child process (this file run
as a script) that has fla-core (scripts/fla-reference.sh, which ``make test`` runs; BIOMAMBA_FLA_REF overrides
its location) and mamba-ssm with triton (scripts/mamba-ssm-reference.sh; BIOMAMBA_MAMBA_SSM_REF) on its path.
Shims make the interpreter run the kernels as on a GPU, none touches their math: the autotuner keeps its first
config (benchmarking needs a GPU driver); a loop variable of ``for i in range(n)`` is a Triton scalar, as
compiled Triton makes it (fla calls ``i_t.to(tl.int64)``); and for mamba-ssm, whose launchers ask the CUDA
runtime, ``torch.cuda.device`` is a no-op and the device reports 4 multiprocessors (it only splits the work).
On a GPU the same comparisons run compiled, in bf16 and fp32, at a larger size (marked ``gpu``).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tests.factories.scripts import ROOT

FLA_REF = Path(os.environ.get("BIOMAMBA_FLA_REF", ROOT / ".venv" / "fla-ref"))
MAMBA_SSM_REF = Path(os.environ.get("BIOMAMBA_MAMBA_SSM_REF", ROOT / ".venv" / "mamba-ssm-ref"))
# relative error bounds: fp32 (interpreter: numpy fp32; GPU: tf32 dots), bf16 matmul operands
TOLERANCE = {"float32": 2e-4, "float32-gpu": 5e-3, "bfloat16": 5e-2}


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want.float()).abs().max() / want.float().abs().max().clamp_min(1e-12))


def packed_segments(batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """Segment ids with documents of random lengths (some shorter than a chunk, some spanning chunks)."""
    rows = []
    for _ in range(batch):
        cuts = torch.randint(1, length, (3,), generator=generator).unique().sort().values
        row = torch.zeros(length, dtype=torch.long)
        for cut in cuts:
            row[cut:] += 1
        rows.append(row)
    return torch.stack(rows)


def scan_inputs(b: int, length: int, h: int, g: int, p: int, n: int, dtype: torch.dtype, device: str):
    """Leaves of one scan call: dt is given raw, with a bias, as the mixer has it (mamba-ssm takes it so)."""
    gen = torch.Generator().manual_seed(0)

    def rand(*shape, scale=1.0, dtype=dtype):
        return (scale * torch.randn(*shape, generator=gen)).to(device=device, dtype=dtype).requires_grad_()

    x, B, C = rand(b, length, h, p), rand(b, length, g, n, scale=0.5), rand(b, length, g, n, scale=0.5)
    dt_raw, dt_bias = rand(b, length, h, dtype=torch.float32), rand(h, scale=0.5, dtype=torch.float32)
    A = (-torch.rand(h, generator=gen) * 4 - 0.5).to(device).requires_grad_()
    D = torch.randn(h, generator=gen).to(device).requires_grad_()
    return {"x": x, "dt_raw": dt_raw, "dt_bias": dt_bias, "A": A, "B": B, "C": C, "D": D}


def run_scan(kernel: str, a: dict[str, torch.Tensor], seg: torch.Tensor | None, chunk: int) -> torch.Tensor:
    from biomamba.models.kernels.fla_kernel import fla_ssd
    from biomamba.models.kernels.mamba_ssm_kernel import triton_ssd
    from biomamba.models.ssd import ssd_chunked

    if kernel == "triton":
        no_limit = (0.0, float("inf"))
        return triton_ssd(
            a["x"], a["dt_raw"], a["dt_bias"], a["A"], a["B"], a["C"], a["D"], chunk, no_limit, seg
        )
    dt = torch.nn.functional.softplus(a["dt_raw"] + a["dt_bias"])
    if kernel == "fla":
        return fla_ssd(a["x"], dt, a["A"], a["B"], a["C"], a["D"], seg)
    return ssd_chunked(a["x"], dt, a["A"], a["B"], a["C"], chunk, D=a["D"], seg=seg)[0]


def compare_scans(
    kernel: str, dims: tuple[int, ...], dtype: torch.dtype, device: str, packed: bool
) -> dict[str, float]:
    """Relative errors of ``kernel`` vs ssd_chunked at `dims` (b, length, h, g, p, n, as `scan_inputs`): the
    output and the gradient of every input."""
    b, length, h, _, p, _ = dims
    seg = packed_segments(b, length, torch.Generator().manual_seed(1)).to(device) if packed else None
    grad_out = torch.randn(b, length, h, p, generator=torch.Generator().manual_seed(2)).to(device)
    outs = {}
    for name in (kernel, "torch"):
        inputs = scan_inputs(*dims, dtype, device)
        y = run_scan(name, inputs, seg, 16 if device == "cpu" else 64)  # compiled Triton: 16+ per dot side
        (y.float() * grad_out).sum().backward()
        outs[name] = {"y": y.detach(), **{k: v.grad for k, v in inputs.items()}}
    return {key: rel_err(outs[kernel][key], want) for key, want in outs["torch"].items()}


def compare_models(
    kernel: str, device: str, dtype: torch.dtype, headdim: int = 8, d_state: int = 16, chunk_size: int = 8
) -> dict[str, float]:
    """A whole tiny Mamba2 with ``kernels=kernel`` vs ``torch`` on packed documents: loss and every gradient.
    (Compiled Triton needs dot operands of at least 16 per side: headdim, chunk >= 16 on a GPU.)"""
    from tests.models.conftest import random_ids, tiny_model

    ids = random_ids(2, 40, seed=3).to(device)
    seq_idx = packed_segments(2, 40, torch.Generator().manual_seed(4)).to(device)
    outs = {}
    for kernels in (kernel, "torch"):
        dims = {"headdim": headdim, "d_state": d_state, "chunk_size": chunk_size}
        model = tiny_model(seed=5, ngroups=2, kernels=kernels, **dims)
        model = model.to(device).train()
        with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
            loss = model(input_ids=ids, seq_idx=seq_idx, labels=ids).loss
        loss.backward()
        grads = {k: v.grad.detach().clone() for k, v in model.named_parameters()}
        outs[kernels] = {"loss": loss.detach().reshape(1), **grads}
    return {key: rel_err(outs[kernel][key], want) for key, want in outs["torch"].items()}


# What the CPU child compares per kernel (mamba-ssm's kernels are slow under the interpreter: one packed scan)
CPU_CASES = {"fla": ("scan packed", "scan unpacked", "model packed"), "triton": ("scan packed",)}


def cpu_report(kernel: str) -> dict[str, dict[str, float]]:
    scan = functools.partial(compare_scans, kernel, (2, 40, 4, 2, 8, 16), torch.float32, "cpu")
    cases = {
        "scan packed": lambda: scan(packed=True),
        "scan unpacked": lambda: scan(packed=False),
        "model packed": lambda: compare_models(kernel, "cpu", torch.float32),
    }
    return {case: cases[case]() for case in CPU_CASES[kernel]}


def _child_env() -> dict[str, str]:
    paths = [str(FLA_REF), str(MAMBA_SSM_REF), str(ROOT / "src"), str(ROOT)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "TRITON_INTERPRET": "1"}


def _installed(kernel: str) -> bool:
    return (MAMBA_SSM_REF / "triton").is_dir() and (kernel != "fla" or (FLA_REF / "fla").is_dir())


@pytest.mark.parametrize("kernel", ["fla", "triton"])
def test_triton_kernels_match_torch_scan_on_cpu_interpreter(tmp_path, kernel):
    if not _installed(kernel):
        pytest.skip(
            f"fla-core ({FLA_REF}: scripts/fla-reference.sh) or mamba-ssm + triton ({MAMBA_SSM_REF}: "
            "scripts/mamba-ssm-reference.sh) not installed; make test installs both"
        )
    out = tmp_path / "errors.json"
    done = subprocess.run(
        [sys.executable, __file__, kernel, str(out)],
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    errors = json.loads(out.read_text())
    assert tuple(errors) == CPU_CASES[kernel]
    for case, per_tensor in errors.items():
        assert len(per_tensor) >= 8, case  # the output (or loss) and the gradients all came back
        worst = max(per_tensor, key=per_tensor.get)
        assert per_tensor[worst] < TOLERANCE["float32"], (case, worst, per_tensor[worst])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("kernel", ["fla", "triton"])
def test_triton_kernels_match_torch_scan_on_gpu(kernel, dtype):
    from biomamba.models.kernels.fla_kernel import fla_chunk_scan
    from biomamba.models.kernels.mamba_ssm_kernel import triton_chunk_scan

    if (fla_chunk_scan if kernel == "fla" else triton_chunk_scan)() is None:
        pytest.skip(f"the {kernel} kernels are not installed (fla: pip install 'biomamba[fla]'; mamba-ssm)")
    bound = TOLERANCE["float32-gpu" if dtype == torch.float32 else "bfloat16"]
    for packed in (True, False):
        errors = compare_scans(kernel, (2, 1000, 8, 2, 64, 128), dtype, "cuda", packed)
        worst = max(errors, key=errors.get)
        assert errors[worst] < bound, (packed, worst, errors[worst])
    errors = compare_models(kernel, "cuda", dtype, headdim=16, d_state=32, chunk_size=64)
    worst = max(errors, key=errors.get)
    assert errors[worst] < bound, (worst, errors[worst])


def _interpreter_shims() -> None:
    """Make Triton's interpreter run the kernels as on a GPU (see the module docstring)."""
    import ast
    import contextlib
    import types

    import triton.runtime.autotuner as autotuner
    import triton.runtime.interpreter as interpreter

    init = autotuner.Autotuner.__init__

    def first_config_only(self, fn, arg_names, configs, *args, **kwargs):
        init(self, fn, arg_names, configs[:1], *args, **kwargs)

    def loop_variable_as_scalar(self, node):
        node = self.generic_visit(node)
        if isinstance(node.target, ast.Name):
            to_tensor = ast.Attribute(ast.Name("interpreter_semantic", ast.Load()), "to_tensor", ast.Load())
            value = ast.Call(to_tensor, [ast.Name(node.target.id, ast.Load()), ast.Constant(False)], [])
            assign = ast.Assign([ast.Name(node.target.id, ast.Store())], value)
            node.body.insert(0, ast.fix_missing_locations(ast.copy_location(assign, node)))
        return node

    autotuner.Autotuner.__init__ = first_config_only
    interpreter.ASTTransformer.visit_For = loop_variable_as_scalar
    torch.cuda.device = lambda index: contextlib.nullcontext()
    torch.cuda.get_device_properties = lambda device=None: types.SimpleNamespace(multi_processor_count=4)


if __name__ == "__main__":  # the child: python test_kernels_parity.py KERNEL OUT.json, TRITON_INTERPRET=1
    _interpreter_shims()
    torch.set_num_threads(1)
    Path(sys.argv[2]).write_text(json.dumps(cpu_report(sys.argv[1]), indent=1))
