"""Each merge method against mergekit itself on the same config (skipped when mergekit is not importable)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from biomamba.compress.merge import load_merge_config, merge

from .helpers import save_tiny

mergekit_merge = pytest.importorskip(
    "mergekit.merge", reason="mergekit (test-only dependency) not importable"
)
from mergekit.config import MergeConfiguration  # noqa: E402

SLERP_BIOMISTRAL = """
slices:
  - sources:
      - model: {m0}
        layer_range: [0, 3]
      - model: {m1}
        layer_range: [0, 3]
merge_method: slerp
base_model: {m0}
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5
dtype: float32
"""

CONFIGS = {
    "linear": """
models:
  - model: {m0}
    parameters: {{weight: 0.7}}
  - model: {m1}
    parameters: {{weight: [0.1, 0.9]}}
merge_method: linear
dtype: float32
""",
    "slerp": SLERP_BIOMISTRAL,
    "task_arithmetic": """
models:
  - model: {m1}
    parameters: {{weight: 0.6}}
  - model: {m2}
    parameters: {{weight: 0.3}}
merge_method: task_arithmetic
base_model: {m0}
parameters: {{lambda: 0.9}}
dtype: float32
""",
    "ties": """
models:
  - model: {m0}
  - model: {m1}
    parameters: {{weight: 0.5, density: 0.5}}
  - model: {m2}
    parameters:
      weight: 0.5
      density: [{{filter: mlp, value: 0.3}}, {{value: 0.7}}]
merge_method: ties
base_model: {m0}
parameters: {{normalize: true}}
dtype: float32
""",
    # With density 1 DARE drops nothing: the rest of the pipeline (weights, sign consensus, rescale) is exact.
    "dare_ties": """
models:
  - model: {m1}
    parameters: {{weight: 0.5, density: 1.0}}
  - model: {m2}
    parameters: {{weight: 0.8, density: 1.0}}
merge_method: dare_ties
base_model: {m0}
dtype: float32
""",
}
# dare_linear: dare_ties' models and weights, without the sign consensus
CONFIGS["dare_linear"] = CONFIGS["dare_ties"].replace("dare_ties", "dare_linear")


def _merge_matches_mergekit(tmp_path: Path, method: str, models: list[Path]) -> dict:
    """Merge `models` with CONFIGS[method] by biomamba and by mergekit; assert every tensor agrees within
    1e-6 and return biomamba's tensors."""
    text = CONFIGS[method].format(**{f"m{i}": p for i, p in enumerate(models)})
    config_path = tmp_path / "merge.yaml"
    config_path.write_text(text)
    ours = load_file(merge(load_merge_config(config_path), tmp_path / "ours") / "model.safetensors")
    options = mergekit_merge.MergeOptions(quiet=True, copy_tokenizer=False, write_model_card=False)
    mergekit_merge.run_merge(
        MergeConfiguration.model_validate(yaml.safe_load(text)), str(tmp_path / "mk"), options
    )
    theirs = load_file(tmp_path / "mk" / "model.safetensors")
    assert set(ours) == set(theirs)
    for name, tensor in theirs.items():
        torch.testing.assert_close(ours[name], tensor, atol=1e-6, rtol=0, msg=name)
    return ours


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_matches_mergekit(method: str, three_llamas: list[Path], tmp_path: Path) -> None:
    ours = _merge_matches_mergekit(tmp_path, method, three_llamas)
    # the merge really changed something (the test could fail)
    original = load_file(three_llamas[0] / "model.safetensors")
    assert any(not torch.equal(ours[n], original[n]) for n in original)


@pytest.mark.parametrize("family", ["gpt2", "mistral"])
def test_other_families_match_mergekit(family: str, tmp_path: Path, tokenizer) -> None:
    models = [save_tiny(tmp_path / f"{family}{i}", family, seed=i, tokenizer=tokenizer) for i in range(3)]
    _merge_matches_mergekit(tmp_path, "ties", models)
