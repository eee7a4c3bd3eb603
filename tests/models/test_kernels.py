"""The scan backends on CPU: the choice of backend, the fla mapping against the recurrence fla computes, and
the compiled torch scan. fla's real kernels are compared in test_kernels_parity.py."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from tests.models.conftest import random_ids, tiny_model

from biomamba.models.config import ModelConfig
from biomamba.models.kernels import KERNEL_CHOICES, compiled_ssd
from biomamba.models.kernels.dispatch import scan_backend
from biomamba.models.kernels.fla_kernel import cu_seqlens_from_segments, fla_inputs
from biomamba.models.mamba2 import Mamba2Config
from biomamba.models.ssd import segment_ids, ssd_chunked


def test_every_kernel_choice_is_accepted_by_the_model_and_the_recipe():
    for choice in KERNEL_CHOICES:
        assert Mamba2Config(d_model=32, n_layer=1, vocab_size=16, kernels=choice).kernels == choice
        assert ModelConfig(preset="tiny", kernels=choice).kernels == choice
    with pytest.raises(ValueError, match="kernels must be one of auto, torch, torch_compile, triton, fla"):
        Mamba2Config(d_model=32, n_layer=1, vocab_size=16, kernels="cuda")
    with pytest.raises(ValidationError, match="kernels"):
        ModelConfig(preset="tiny", kernels="cuda")


def test_auto_runs_the_torch_scan_on_cpu_and_explicit_kernels_refuse_it(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x = torch.zeros(1, 4, 2, 8)
    assert scan_backend("auto", x) == "torch"
    assert scan_backend("torch_compile", x) == "torch_compile"
    for kernel, hint in (("fla", "biomamba\\[fla\\]"), ("triton", "mamba-ssm")):
        with pytest.raises(RuntimeError, match=f"kernels='{kernel}' needs .*{hint}.* and CUDA tensors"):
            scan_backend(kernel, x)
    model = tiny_model(kernels="fla")
    with pytest.raises(RuntimeError, match="kernels='fla'"):
        model(input_ids=torch.zeros(1, 5, dtype=torch.long))
    # decoding never uses a kernel: a cached forward works with any choice
    cache = model.allocate_cache(1)
    assert model(input_ids=torch.zeros(1, 5, dtype=torch.long), cache=cache).logits.shape[:2] == (1, 5)


def test_cu_seqlens_start_at_every_document_and_every_row():
    seg = segment_ids(torch.tensor([[7, 7, 3, 3, 3], [0, 1, 1, 2, 2]]))
    device_copy, cpu_copy = cu_seqlens_from_segments(seg)
    assert cpu_copy.tolist() == [0, 2, 5, 6, 8, 10] and torch.equal(device_copy, cpu_copy)
    other = segment_ids(torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 0, 1]]))  # a new tensor: not the cached one
    assert cu_seqlens_from_segments(other)[1].tolist() == [0, 5, 9, 10]


def simple_gla_recurrence(q, k, v, g, cu_seqlens):
    """fla's definition of chunk_simple_gla (scale 1), step by step: S_t = exp(g_t) S_{t-1} + k_t^T v_t,
    o_t = q_t S_t, the state reset at every offset of cu_seqlens (one flattened row) or per row without."""
    n, t, h, _ = q.shape
    starts = set(cu_seqlens.tolist()) if cu_seqlens is not None else {0}
    out = torch.zeros(n, t, h, v.shape[-1])
    for row in range(n):
        state = torch.zeros(h, q.shape[-1], v.shape[-1])
        for pos in range(t):
            if pos in starts:
                state = torch.zeros_like(state)
            decay = torch.exp(g[row, pos])[:, None, None]
            state = decay * state + k[row, pos][:, :, None] * v[row, pos][:, None, :]
            out[row, pos] = torch.einsum("hk,hkv->hv", q[row, pos], state)
    return out


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "unpacked"])
def test_fla_mapping_computes_the_ssd_scan(packed):
    gen = torch.Generator().manual_seed(0)
    b, length, h, g, p, n = 2, 19, 4, 2, 3, 5
    x = torch.randn(b, length, h, p, generator=gen)
    dt = torch.rand(b, length, h, generator=gen)
    A = -torch.rand(h, generator=gen) * 3
    B, C = torch.randn(b, length, g, n, generator=gen), torch.randn(b, length, g, n, generator=gen)
    D = torch.randn(h, generator=gen)
    seg = segment_ids(torch.tensor([[0] * 6 + [1] * 13, [0] * 15 + [1] * 4])) if packed else None
    inputs = fla_inputs(x, dt, A, B, C, seg)
    o = simple_gla_recurrence(inputs.q, inputs.k, inputs.v, inputs.g, inputs.cu_seqlens)
    got = o.reshape(b, length, h, p) + x * D[:, None]
    want = ssd_chunked(x, dt, A, B, C, 8, D=D, seg=seg)[0]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_torch_compile_kernels_compile_the_scan_in_one_graph_with_the_same_results(monkeypatch):
    """Dynamo captures the scan whole (fullgraph: a graph break would raise); the eager backend keeps the
    test fast (Inductor's C++ build takes minutes here) and benchmarks/models_train_step.py measures it."""
    compiled, real_compile = [], torch.compile

    def recording_compile(fn, **kwargs):
        compiled.append((fn, kwargs))
        return real_compile(fn, **{**kwargs, "backend": "eager"})

    monkeypatch.setattr(torch, "compile", recording_compile)
    compiled_ssd.cache_clear()
    ids = random_ids(2, 21)
    seq_idx = torch.tensor([[0] * 9 + [1] * 12, [0] * 21])
    grads = {}
    try:
        for kernels in ("torch", "torch_compile"):
            model = tiny_model(seed=2, kernels=kernels).train()
            loss = model(input_ids=ids, seq_idx=seq_idx, labels=ids).loss
            loss.backward()
            grads[kernels] = {"loss": loss.detach(), **{k: v.grad for k, v in model.named_parameters()}}
    finally:
        compiled_ssd.cache_clear()
    assert [(fn, kw.get("fullgraph")) for fn, kw in compiled] == [(ssd_chunked, True)]
    for key, want in grads["torch"].items():
        torch.testing.assert_close(grads["torch_compile"][key], want, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize("source", ["name_or_path", "preset"])
def test_recipe_kernels_reach_the_model_the_trainer_trains(tmp_path, source):
    """`model: {kernels: ...}` is a recipe switch for continued pretraining from a checkpoint too."""
    from biomamba.models import save_model
    from biomamba.train.config import TrainConfig
    from biomamba.train.run import build_model

    save_model(tiny_model(), tmp_path / "base")
    where = {"name_or_path": str(tmp_path / "base")} if source == "name_or_path" else {"preset": "tiny"}
    recipe = {"model": {**where, "kernels": "torch_compile", "chunk_size": 4, "recompute_scan": False}}
    model, family = build_model(TrainConfig(), "recipe.yaml", vocab_size=90, seed=0, recipe=recipe)
    assert family == "mamba2" and (model.config.kernels, model.config.chunk_size) == ("torch_compile", 4)
    assert model.config.recompute_scan is False
