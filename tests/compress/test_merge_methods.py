"""The merge-method registry is the one place a method lives: the config schema and `merge` follow it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from biomamba.compress import merge_methods
from biomamba.compress.config import MergeConfig
from biomamba.compress.merge import load_merge_config, merge
from biomamba.compress.merge_methods import METHODS, MergeInputs, MergeMethod, Param, TaskArithmetic
from biomamba.errors import RecipeError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "merge.yaml"
    path.write_text(text)
    return path


@dataclass(frozen=True)
class _ScaledFirst(MergeMethod):
    """A method the registry has never seen: `factor` times the first non-base model, base required."""

    name: str = "scaled_first"
    needs_base: bool = True
    params: tuple[Param, ...] = (Param("factor", 1.0), Param("scale", per_model=True))

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        return inputs.others[0] * float(inputs.shared["factor"]) * float(inputs.per_model[0]["scale"])


def test_a_registered_method_is_usable_end_to_end(
    tmp_path: Path, three_llamas: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, other, _ = map(str, three_llamas)
    text = f"merge_method: scaled_first\nbase_model: {base}\nmodels: [{{model: {other}, parameters: {{scale: 2}}}}]\n"
    with pytest.raises(RecipeError, match=r"unknown merge_method 'scaled_first' \(known: dare_linear"):
        load_merge_config(_write(tmp_path, text))
    monkeypatch.setitem(METHODS, "scaled_first", _ScaledFirst())
    cfg = load_merge_config(_write(tmp_path, text + "parameters: {factor: 0.5}\n"))
    out = load_file(merge(cfg, tmp_path / "out") / "model.safetensors")
    source = load_file(Path(other) / "model.safetensors")
    assert set(out) == set(source)
    for name, tensor in source.items():
        torch.testing.assert_close(out[name], tensor * 0.5 * 2.0)
    with pytest.raises(RecipeError, match="merge_method scaled_first needs base_model"):
        load_merge_config(_write(tmp_path, text.replace(f"base_model: {base}\n", "")))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_base_model_rule_comes_from_the_registry(name: str) -> None:
    own = {key: 1.0 for key in METHODS[name].per_model_params()}
    models = [{"model": "a", "parameters": own}, {"model": "b", "parameters": own}]
    if METHODS[name].needs_base:
        with pytest.raises(ValueError, match=f"merge_method {name} needs base_model"):
            MergeConfig.model_validate({"merge_method": name, "models": models})
    else:
        assert MergeConfig.model_validate({"merge_method": name, "models": models}).base_model is None
    MergeConfig.model_validate({"merge_method": name, "models": models, "base_model": "a"})


def test_ties_and_dare_are_rows_of_one_class() -> None:
    rows = {name: m for name, m in METHODS.items() if isinstance(m, TaskArithmetic)}
    assert set(rows) == {"task_arithmetic", "ties", "dare_ties", "dare_linear"}
    assert {(m.sparsify, m.consensus) for m in rows.values()} == {
        (None, False),
        ("magnitude", True),
        ("random", True),
        ("random", False),
    }
    assert METHODS["ties"].shared_params()["normalize"] is True
    assert METHODS["dare_ties"].shared_params()["rescale"] is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # a typo'd per-model key: before the registry, density silently stayed 1 (nothing trimmed)
            "merge_method: ties\nbase_model: a\nmodels: [{model: b, parameters: {weight: 1, densty: 0.5}}]\n",
            r"merge: models\.0\.parameters: ties has no parameter 'densty' \(known: density, int8_mask, lambda",
        ),
        (  # slerp's t is one value for both models: a model-level t was silently ignored
            "merge_method: slerp\nbase_model: a\nmodels: [{model: a}, {model: b, parameters: {t: 0.3}}]\n",
            r"models\.1\.parameters: 't' is one value for all models of slerp; set it in the global",
        ),
        (
            "merge_method: linear\nslices:\n  - sources: [{model: a, layer_range: [0, 2], parameters: {wieght: 1}}]\n",
            r"slices\.0\.sources\.0\.parameters: linear has no parameter 'wieght' \(known: normalize, weight\)",
        ),
        (
            "merge_method: dare_linear\nbase_model: a\nmodels: [{model: b}]\nparameters: {gamma: 0.1}\n",
            "'gamma'",
        ),
    ],
)
def test_parameter_names_are_checked_against_the_method(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(RecipeError, match=expected):
        load_merge_config(_write(tmp_path, text))


def test_declared_parameters_are_accepted_where_mergekit_reads_them(tmp_path: Path) -> None:
    text = (
        "merge_method: dare_ties\nbase_model: a\n"
        "slices:\n  - sources:\n      - {model: a, layer_range: [0, 2]}\n"
        "      - {model: b, layer_range: [0, 2], parameters: {weight: 0.5, density: 0.5}}\n"
        "    parameters: {lambda: 0.9, weight: 0.3}\n"
        "parameters: {int8_mask: true, normalize: false, rescale: true, density: [{filter: mlp, value: 0.4}]}\n"
    )
    assert load_merge_config(_write(tmp_path, text)).merge_method == "dare_ties"


def test_register_refuses_a_duplicate_name() -> None:
    with pytest.raises(ValueError, match="'ties' is already registered"):
        merge_methods.register(TaskArithmetic("ties", None, False, False, False))


def test_the_registry_loads_only_when_a_merge_is_validated() -> None:
    """Schemas are read by `recipe check` and every CLI; the registry (and torch) only for a merge section."""
    code = (
        "import sys\n"
        "from biomamba.config import load_section\n"
        "from biomamba.compress.config import MergeConfig, QuantizeConfig\n"
        "load_section({'quantize': {'method': 'int4'}}, 'quantize', QuantizeConfig)\n"
        "print('torch' in sys.modules, 'biomamba.compress.merge_methods' in sys.modules)\n"
        "MergeConfig.model_validate({'merge_method': 'linear', 'models': [{'model': 'a'}]})\n"
        "print('biomamba.compress.merge_methods' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == ["False", "False", "True"]
