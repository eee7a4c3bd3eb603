"""Merge behaviour that does not need mergekit: streaming, errors, slices, DARE statistics, Mamba2 names."""

from __future__ import annotations

import json
import weakref
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from biomamba.compress import merge as merge_mod
from biomamba.compress.config import MergeConfig
from biomamba.compress.merge import evaluate_setting, load_merge_config, merge, random_prune
from biomamba.compress.safetensors_io import CheckpointReader, StreamingShardWriter, TensorSpec
from biomamba.errors import CheckpointError, RecipeError

from .helpers import save_tiny


def _cfg(**kw) -> MergeConfig:
    return MergeConfig.model_validate(kw)


def _onto_first(llamas: list[Path], **kw) -> MergeConfig:
    """A merge of llamas[1:] onto the base llamas[0], each at weight 0.5 and density 0.5."""
    models = [{"model": str(p), "parameters": {"weight": 0.5, "density": 0.5}} for p in llamas[1:]]
    return _cfg(base_model=str(llamas[0]), models=models, **kw)


def test_streaming_writer_shards_load_with_safetensors(tmp_path: Path) -> None:
    tensors = {f"t{i}": torch.randn(10, 7).to(dt) for i, dt in enumerate([torch.float32, torch.bfloat16] * 3)}
    tensors["scalar"] = torch.tensor(3.0)
    specs = [TensorSpec(n, t.dtype, tuple(t.shape)) for n, t in tensors.items()]
    writer = StreamingShardWriter(tmp_path, specs, max_shard_size=400)
    for name, tensor in tensors.items():
        writer.write(name, tensor)
    writer.close()
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    reader = CheckpointReader(tmp_path)
    for name, tensor in tensors.items():
        assert torch.equal(reader.get(name), tensor)


def test_writer_refuses_out_of_plan_tensor(tmp_path: Path) -> None:
    writer = StreamingShardWriter(tmp_path, [TensorSpec("a", torch.float32, (2,))], 100)
    with pytest.raises(RuntimeError, match="expected"):
        writer.write("a", torch.zeros(3))


def test_incompatible_shapes_name_the_tensor(tmp_path: Path, tokenizer) -> None:
    a = save_tiny(tmp_path / "a", "llama", 0, tokenizer)
    b = save_tiny(tmp_path / "b", "llama", 1, tokenizer, vocab=320)
    cfg = _cfg(merge_method="linear", models=[{"model": str(p), "parameters": {"weight": 1}} for p in (a, b)])
    with pytest.raises(
        CheckpointError,
        match=r"incompatible shapes for tensor .*embed_tokens.weight.*\[300, 16\].*\[320, 16\]",
    ):
        merge(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_weight_parameter_and_missing_checkpoint(tmp_path: Path, three_llamas: list[Path]) -> None:
    cfg = _cfg(merge_method="linear", models=[{"model": str(p)} for p in three_llamas[:2]])
    with pytest.raises(RecipeError, match="parameter 'weight' is required"):
        merge(cfg, tmp_path / "out")
    cfg = _cfg(merge_method="linear", models=[{"model": str(tmp_path / "nope"), "parameters": {"weight": 1}}])
    with pytest.raises(CheckpointError, match="nope: model directory not found"):
        merge(cfg, tmp_path / "out")


def test_config_validation_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("merge_method: slerp\nmodels: [{model: a}, {model: b}, {model: c}]\nbase_model: a\n")
    with pytest.raises(RecipeError, match="slerp merges exactly two models"):
        load_merge_config(path)
    path.write_text("merge_method: ties\nmodels: [{model: a}]\n")
    with pytest.raises(RecipeError, match="needs base_model"):
        load_merge_config(path)
    path.write_text("merge:\n  merge_method: lerp\n  models: [{model: a}]\n")
    with pytest.raises(RecipeError, match=r"merge\.merge_method"):
        load_merge_config(path)


def test_gradient_and_filters_follow_mergekit() -> None:
    setting = [{"filter": "self_attn", "value": [0, 0.5, 1]}, {"value": 0.25}]
    assert evaluate_setting("model.layers.1.self_attn.q_proj.weight", setting, 0.25) == pytest.approx(0.25)
    assert evaluate_setting("model.layers.1.self_attn.q_proj.weight", setting, 0.75) == pytest.approx(0.75)
    assert evaluate_setting("model.layers.1.mlp.up_proj.weight", setting, 0.75) == 0.25


def test_slices_stack_layers_and_update_config(tmp_path: Path, three_llamas: list[Path]) -> None:
    m0, m1, _ = map(str, three_llamas)
    cfg = _cfg(
        merge_method="linear",
        slices=[
            {"sources": [{"model": m0, "layer_range": [0, 2], "parameters": {"weight": 1.0}}]},
            {"sources": [{"model": m1, "layer_range": [1, 3], "parameters": {"weight": 1.0}}]},
        ],
    )
    out = merge(cfg, tmp_path / "out")
    merged = load_file(out / "model.safetensors")
    src1 = load_file(Path(m1) / "model.safetensors")
    assert torch.equal(merged["model.layers.3.mlp.up_proj.weight"], src1["model.layers.2.mlp.up_proj.weight"])
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 4
    assert (out / "tokenizer.json").is_file()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 300)


def test_memory_stays_near_one_tensor_per_model(
    tmp_path: Path, three_llamas: list[Path], monkeypatch
) -> None:
    alive: list[weakref.ref] = []
    peak = 0
    original = CheckpointReader.get

    def tracking_get(self, name, dtype=None):
        nonlocal peak
        tensor = original(self, name, dtype)
        alive.append(weakref.ref(tensor))
        peak = max(peak, sum(r() is not None for r in alive))
        return tensor

    monkeypatch.setattr(CheckpointReader, "get", tracking_get)
    merge(_onto_first(three_llamas, merge_method="ties"), tmp_path / "out")
    assert len(alive) > 20 and peak <= 3


def test_dare_drop_rate_rescale_and_reproducibility() -> None:
    delta = torch.randn(300, 300)
    gen = merge_mod.tensor_generator(7, "w", "m")
    pruned = random_prune(delta, 0.3, rescale=True, generator=gen)
    kept = (pruned != 0).float().mean().item()
    assert abs(kept - 0.3) < 0.01
    torch.testing.assert_close(pruned.abs().sum(), delta.abs().sum())
    nz = pruned != 0
    assert torch.allclose(pruned[nz] / delta[nz], pruned[nz][0] / delta[nz][0])  # one common scale
    again = random_prune(delta, 0.3, True, merge_mod.tensor_generator(7, "w", "m"))
    other = random_prune(delta, 0.3, True, merge_mod.tensor_generator(8, "w", "m"))
    assert torch.equal(pruned, again) and not torch.equal(pruned, other)


def test_dare_merge_is_seeded(tmp_path: Path, three_llamas: list[Path]) -> None:
    def run(seed: int, out: str) -> dict:
        cfg = _onto_first(three_llamas, merge_method="dare_ties", seed=seed)
        return load_file(merge(cfg, tmp_path / out) / "model.safetensors")

    a, b, c = run(1, "a"), run(1, "b"), run(2, "c")
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


def _mamba2_checkpoint(path: Path, seed: int) -> Path:
    """A checkpoint with the transformers Mamba2 tensor names (backbone.layers.<i>.mixer...)."""
    g = torch.Generator().manual_seed(seed)
    tensors = {
        "backbone.embeddings.weight": torch.randn(50, 8, generator=g),
        "backbone.norm_f.weight": torch.ones(8),
    }
    for i in range(4):
        p = f"backbone.layers.{i}."
        tensors[p + "mixer.in_proj.weight"] = torch.randn(40, 8, generator=g)
        tensors[p + "mixer.A_log"] = torch.randn(4, generator=g)
        tensors[p + "norm.weight"] = torch.randn(8, generator=g)
    path.mkdir()
    save_file(tensors, path / "model.safetensors")
    (path / "config.json").write_text(json.dumps({"model_type": "mamba2", "num_hidden_layers": 4}))
    return path


def test_mamba2_slerp_uses_mixer_curve(tmp_path: Path) -> None:
    a, b = _mamba2_checkpoint(tmp_path / "a", 0), _mamba2_checkpoint(tmp_path / "b", 1)
    cfg = _cfg(
        merge_method="slerp",
        base_model=str(a),
        slices=[
            {"sources": [{"model": str(a), "layer_range": [0, 4]}, {"model": str(b), "layer_range": [0, 4]}]}
        ],
        parameters={"t": [{"filter": "mixer", "value": [0, 1]}, {"value": 0.5}]},
    )
    out = load_file(merge(cfg, tmp_path / "out") / "model.safetensors")
    ta, tb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    name0, name3 = "backbone.layers.0.mixer.in_proj.weight", "backbone.layers.3.mixer.in_proj.weight"
    torch.testing.assert_close(out[name0], ta[name0])  # t = 0 at the first layer
    torch.testing.assert_close(out[name3], tb[name3])  # t = 1 at the last layer
    mid = out["backbone.layers.1.norm.weight"]  # t = 0.5 for the rest
    assert not torch.allclose(mid, ta["backbone.layers.1.norm.weight"])
    assert not torch.allclose(mid, tb["backbone.layers.1.norm.weight"])


def test_merge_command(tmp_path: Path, three_llamas: list[Path]) -> None:
    from typer.testing import CliRunner

    from biomamba.cli.main import build_app

    config = tmp_path / "m.yaml"
    config.write_text(
        f"merge_method: dare_linear\nbase_model: {three_llamas[0]}\n"
        f"models:\n  - model: {three_llamas[1]}\n    parameters: {{weight: 1.0, density: 0.5}}\n"
        f"output_dir: {tmp_path / 'from-config'}\n"
    )
    runner = CliRunner()
    result = runner.invoke(build_app(), ["merge", str(config), "--seed", "5"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = tmp_path / "from-config"
    assert (out / "model.safetensors").is_file() and "seed: 5" in (out / "merge_config.yaml").read_text()
    bad = runner.invoke(build_app(), ["merge", str(tmp_path / "absent.yaml")])
    assert "merge config not found" in str(bad.exception)
