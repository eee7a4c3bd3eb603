"""``kernels: fla`` against biomamba's torch scan: fla-core's real ``chunk_simple_gla`` kernels, outputs and
gradients, packed documents (cu_seqlens), grouped B/C.

On CPU the kernels run under Triton's interpreter (``TRITON_INTERPRET=1``) in a child process that has
fla-core (scripts/fla-reference.sh, which ``make test`` runs; BIOMAMBA_FLA_REF overrides its location) and
triton (from the mamba-ssm reference install, BIOMAMBA_MAMBA_SSM_REF) on its path. The child is this file
run as a script. Two shims make the interpreter run fla's kernels as the compiler would (neither touches the
kernels' math): the autotuner keeps its first config (benchmarking needs a GPU driver), and a loop variable of
``for i in range(n)`` is a Triton scalar, as compiled Triton makes it (fla calls ``i_t.to(tl.int64)``).
On a GPU the same comparison runs compiled, in bf16 and fp32, at a larger size (marked ``gpu``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
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
    gen = torch.Generator().manual_seed(0)

    def rand(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=gen)).to(device=device, dtype=dtype).requires_grad_()

    x, B, C = rand(b, length, h, p), rand(b, length, g, n, scale=0.5), rand(b, length, g, n, scale=0.5)
    dt = (
        torch.nn.functional.softplus(torch.randn(b, length, h, generator=gen) - 1).to(device).requires_grad_()
    )
    A = (-torch.rand(h, generator=gen) * 4 - 0.5).to(device).requires_grad_()
    D = torch.randn(h, generator=gen).to(device).requires_grad_()
    return {"x": x, "dt": dt, "A": A, "B": B, "C": C, "D": D}


def compare_scans(
    b: int, length: int, h: int, g: int, p: int, n: int, dtype: torch.dtype, device: str, packed: bool
) -> dict[str, float]:
    """Relative errors of fla_ssd vs ssd_chunked: output and the gradient of every input."""
    from biomamba.models.kernels.fla_kernel import fla_ssd
    from biomamba.models.ssd import ssd_chunked

    results = {}
    seg = packed_segments(b, length, torch.Generator().manual_seed(1)).to(device) if packed else None
    grad_out = torch.randn(b, length, h, p, generator=torch.Generator().manual_seed(2)).to(device)
    outs = {}
    for name in ("fla", "torch"):
        a = inputs = scan_inputs(b, length, h, g, p, n, dtype, device)
        if name == "fla":
            y = fla_ssd(a["x"], a["dt"], a["A"], a["B"], a["C"], a["D"], seg)
        else:
            y = ssd_chunked(a["x"], a["dt"], a["A"], a["B"], a["C"], 16, D=a["D"], seg=seg)[0]
        (y.float() * grad_out).sum().backward()
        outs[name] = {"y": y.detach(), **{k: v.grad for k, v in inputs.items()}}
    for key, want in outs["torch"].items():
        results[key] = rel_err(outs["fla"][key], want)
    return results


def compare_models(device: str, dtype: torch.dtype, headdim: int = 8, d_state: int = 16) -> dict[str, float]:
    """A whole tiny Mamba2 with kernels='fla' vs 'torch' on packed documents: logits and every gradient.
    (Compiled Triton needs dot operands of at least 16 per side: headdim >= 16 on a GPU.)"""
    from tests.models.conftest import tiny_model

    ids = torch.randint(0, 90, (2, 40), generator=torch.Generator().manual_seed(3)).to(device)
    seq_idx = packed_segments(2, 40, torch.Generator().manual_seed(4)).to(device)
    outs = {}
    for kernels in ("fla", "torch"):
        model = tiny_model(seed=5, ngroups=2, headdim=headdim, d_state=d_state, kernels=kernels)
        model = model.to(device).train()
        with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
            loss = model(input_ids=ids, seq_idx=seq_idx, labels=ids).loss
        loss.backward()
        grads = {k: v.grad.detach().clone() for k, v in model.named_parameters()}
        outs[kernels] = {"loss": loss.detach().reshape(1), **grads}
    return {key: rel_err(outs["fla"][key], want) for key, want in outs["torch"].items()}


def _child_env() -> dict[str, str]:
    paths = [str(FLA_REF), str(MAMBA_SSM_REF), str(ROOT / "src"), str(ROOT)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "TRITON_INTERPRET": "1"}


@pytest.mark.skipif(
    not (FLA_REF / "fla").is_dir() or not (MAMBA_SSM_REF / "triton").is_dir(),
    reason=f"fla-core ({FLA_REF}: scripts/fla-reference.sh) or triton ({MAMBA_SSM_REF}: "
    "scripts/mamba-ssm-reference.sh) not installed; make test installs both",
)
def test_fla_kernels_match_torch_scan_on_cpu_interpreter(tmp_path):
    out = tmp_path / "errors.json"
    done = subprocess.run(
        [sys.executable, __file__, str(out)],
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    errors = json.loads(out.read_text())
    assert set(errors) == {"scan packed", "scan unpacked", "model packed"}
    for case, per_tensor in errors.items():
        assert len(per_tensor) >= 7, case  # the output and the gradients all came back
        worst = max(per_tensor, key=per_tensor.get)
        assert per_tensor[worst] < TOLERANCE["float32"], (case, worst, per_tensor[worst])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_fla_kernels_match_torch_scan_on_gpu(dtype):
    from biomamba.models.kernels.fla_kernel import fla_chunk_scan

    if fla_chunk_scan() is None:
        pytest.skip("fla-core is not installed (pip install 'biomamba[fla]')")
    bound = TOLERANCE["float32-gpu" if dtype == torch.float32 else "bfloat16"]
    for packed in (True, False):
        errors = compare_scans(2, 1000, 8, 2, 64, 128, dtype, "cuda", packed)
        worst = max(errors, key=errors.get)
        assert errors[worst] < bound, (packed, worst, errors[worst])
    errors = compare_models("cuda", dtype, headdim=16, d_state=32)
    worst = max(errors, key=errors.get)
    assert errors[worst] < bound, (worst, errors[worst])


def _interpreter_shims() -> None:
    """Make Triton's interpreter run fla's kernels as compiled Triton would (see the module docstring)."""
    import ast

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


if __name__ == "__main__":  # the child process: fla-core and triton importable, TRITON_INTERPRET=1
    _interpreter_shims()
    torch.set_num_threads(1)
    report = {
        "scan packed": compare_scans(2, 40, 4, 2, 8, 16, torch.float32, "cpu", packed=True),
        "scan unpacked": compare_scans(2, 40, 4, 2, 8, 16, torch.float32, "cpu", packed=False),
        "model packed": compare_models("cpu", torch.float32),
    }
    Path(sys.argv[1]).write_text(json.dumps(report, indent=1))
