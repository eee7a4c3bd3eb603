"""Model merging (linear, SLERP, task arithmetic, TIES, DARE) over safetensors checkpoints of any family.

Why our own code rather than calling mergekit: mergekit needs an architecture definition per model family
(biomamba's Mamba2 in the transformers layout has none) and pulls a large dependency tree; merging is a
per-tensor formula, so biomamba reads tensor names generically (`...layers.<i>...`, `...h.<i>...`) and
reproduces mergekit's formulas and config semantics exactly. tests/compress/test_merge_parity.py checks
every method against mergekit itself (within 1e-6) whenever mergekit is importable.

Semantics kept from mergekit, so its YAML configs (BioMistral's included) mean the same thing here:
- `models:` is one slice spanning every layer; the base model joins the inputs if not listed;
- a parameter resolves from the model's own `parameters`, then the slice's, then the global ones; a value
  may be a list of `{filter, value}` (the first filter that is a substring of the tensor name wins) and a
  list of numbers is a gradient interpolated over the layers of the slice (t = layer / (layers - 1));
  embeddings and final norm/head use t = 0;
- inputs are converted to `dtype` before merging, the result is written in `out_dtype` (default `dtype`).

One deliberate difference: DARE's random drop uses a generator seeded per tensor and per model from
(`seed`, tensor name, model), not one global stream, so a merge is reproducible whatever the order tensors
are processed in. Its statistics (keep rate = density, l1 rescaling) are tested instead of bitwise parity.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from biomamba.compress.config import MergeConfig, OutputSlice, SliceSource
from biomamba.compress.merge_methods import REQUIRED, MergeInputs, method_named, random_prune
from biomamba.compress.safetensors_io import CheckpointReader, StreamingShardWriter, TensorSpec, torch_dtype
from biomamba.config import load_recipe_or_merge_file, load_section
from biomamba.errors import CheckpointError, RecipeError
from biomamba.models.checkpoint import copy_files
from biomamba.utils.atomic import atomic_dir

__all__ = [
    "TensorGroup",
    "check_compatible",
    "evaluate_setting",
    "load_merge_config",
    "merge",
    "merge_group",
    "plan_merge",
    "random_prune",  # DARE's drop, whose statistics tests/compress/test_merge.py checks; from merge_methods
    "tensor_generator",
]

LAYER_RE = re.compile(r"^(?P<prefix>(?:.*\.)?(?:layers|h|blocks|layer)\.)(?P<index>\d+)(?P<suffix>\..+)$")
POST_RE = re.compile(r"(lm_head|norm_f|ln_f|final_layer_norm|(^|\.)norm\.)")
LAYER_COUNT_KEYS = ("num_hidden_layers", "n_layer", "num_layers")

# ---------------------------------------------------------------------------------------------------------
# Parameter resolution (mergekit's filters and gradients)


def evaluate_setting(tensor_name: str, setting: Any, t: float) -> Any:
    """Resolve one parameter setting for a tensor at layer position t in [0, 1], as mergekit does."""
    if isinstance(setting, Mapping):
        setting = [setting]
    if isinstance(setting, bool | int | float):
        return setting
    if not isinstance(setting, list) or not setting:
        return None
    if all(isinstance(v, bool | int | float) for v in setting):
        if any(isinstance(v, bool) for v in setting):
            return setting[int(t * (len(setting) - 1))]
        scaled = t * (len(setting) - 1)
        i0 = int(scaled)
        i1 = min(len(setting) - 1, i0 + 1)
        frac = scaled - i0
        return (1 - frac) * setting[i0] + frac * setting[i1]
    for cond in setting:
        if not isinstance(cond, Mapping) or "value" not in cond:
            raise RecipeError(
                "merge config", "parameters", f"expected {{filter, value}} entries, got {cond!r}"
            )
        flt = cond.get("filter")
        if flt is None or flt == "*" or (tensor_name and flt in tensor_name):
            return evaluate_setting(tensor_name, cond["value"], t)
    return None


def _resolve(
    name: str, scopes: Iterable[Mapping[str, Any] | None], tensor: str, t: float, default: Any, where: str
) -> Any:
    for scope in scopes:
        if scope and name in scope:
            value = evaluate_setting(tensor, scope[name], t)
            if value is not None:
                return value
    if default is REQUIRED:
        raise RecipeError("merge config", "parameters", f"parameter '{name}' is required for {where}")
    return default


# ---------------------------------------------------------------------------------------------------------
# Planning: which output tensor comes from which input tensors, with which parameters


@dataclass
class TensorGroup:
    """One output tensor: its inputs (model, tensor name), the base model, and resolved parameters."""

    out_name: str
    inputs: list[tuple[str, str]]
    base: str | None
    shared: dict[str, Any]
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)


def _layer_count(tensor_names: Iterable[str]) -> int:
    """One more than the highest layer index among the names (0 when no name is a layer's)."""
    indices = [int(m["index"]) for m in map(LAYER_RE.match, tensor_names) if m]
    return max(indices) + 1 if indices else 0


def _normalized_slices(cfg: MergeConfig, readers: Mapping[str, CheckpointReader]) -> list[OutputSlice]:
    """`models:` as mergekit reads it: one slice over every layer of each model (the base joining them)."""
    if cfg.slices:
        return list(cfg.slices)

    def every_layer(model: str, parameters: dict[str, Any] | None = None) -> SliceSource:
        layers = max(1, _layer_count(readers[model].keys()))
        return SliceSource(model=model, layer_range=(0, layers), parameters=parameters)

    sources = [every_layer(m.model, m.parameters) for m in cfg.models or []]
    if cfg.base_model and cfg.base_model not in {s.model for s in sources}:
        sources.append(every_layer(cfg.base_model))
    _check_same_layer_count(sources)
    return [OutputSlice(sources=sources)]


def _check_same_layer_count(sources: list[SliceSource]) -> None:
    """Whole-model merges pair layer i with layer i: say so in one line when the depths differ."""
    counts = {s.model: s.layer_range[1] - s.layer_range[0] for s in sources}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{model}: {n} layers" for model, n in counts.items())
        raise CheckpointError(
            f"cannot merge models with different layer counts ({listed}); pick matching layers with a "
            "slices: section (layer_range per source)"
        )


def plan_merge(cfg: MergeConfig, readers: Mapping[str, CheckpointReader]) -> list[TensorGroup]:
    """Every output tensor with its inputs and parameters, in output order (embeddings, layers, head)."""
    slices = _normalized_slices(cfg, readers)
    method = method_named(cfg.merge_method)
    shared_defaults, input_defaults = method.shared_params(), method.per_model_params()
    groups: list[TensorGroup] = []

    def add(out_name: str, out_slice: OutputSlice, names: dict[str, str], t: float) -> None:
        base = (out_slice.base_model or cfg.base_model) if method.needs_base else None
        shared_scopes = [out_slice.parameters, cfg.parameters]
        shared = {k: _resolve(k, shared_scopes, out_name, t, d, out_name) for k, d in shared_defaults.items()}
        group = TensorGroup(out_name, list(names.items()), base, shared)
        for model, in_name in names.items():
            scopes = [s.parameters for s in out_slice.sources if s.model == model]
            scopes += [out_slice.parameters, cfg.parameters]
            if model == base:
                continue
            group.per_model[model] = {
                k: _resolve(k, scopes, in_name, t, d, f"model {model} (tensor {in_name})")
                for k, d in input_defaults.items()
            }
        groups.append(group)

    first_model = slices[0].sources[0].model
    outer = [n for n in readers[first_model].keys() if not LAYER_RE.match(n)]
    pre = [n for n in outer if not POST_RE.search(n)]
    post = [n for n in outer if POST_RE.search(n)]
    for name in sorted(pre):
        add(name, slices[0], {s.model: name for s in slices[0].sources}, 0.0)
    offset = 0
    for out_slice in slices:
        first = out_slice.sources[0]  # its tensor names stand for all sources (OutputSlice checks lengths)
        length = first.layer_range[1] - first.layer_range[0]
        for idx in range(length):
            t = idx / (length - 1) if length > 1 else 1.0
            for prefix, suffix in _layer_templates(readers[first.model], first, idx):
                names = {s.model: f"{prefix}{s.layer_range[0] + idx}{suffix}" for s in out_slice.sources}
                add(f"{prefix}{offset + idx}{suffix}", out_slice, names, t)
        offset += length
    for name in sorted(post):
        add(name, slices[-1], {s.model: name for s in slices[-1].sources}, 0.0)
    return groups


def _layer_templates(reader: CheckpointReader, source: SliceSource, idx: int) -> list[tuple[str, str]]:
    layer = source.layer_range[0] + idx
    found = []
    for name in reader.keys():
        match = LAYER_RE.match(name)
        if match and int(match["index"]) == layer:
            found.append((match["prefix"], match["suffix"]))
    if not found:
        raise RecipeError(
            "merge config",
            "layer_range",
            f"model {source.model} has no layer {layer} (range {source.layer_range})",
        )
    return sorted(found)


def check_compatible(groups: list[TensorGroup], readers: Mapping[str, CheckpointReader]) -> list[TensorSpec]:
    """Fail before writing anything when a tensor is missing or shapes differ; return the output specs."""
    specs = []
    for group in groups:
        shapes = {}
        for model, name in group.inputs:
            if name not in readers[model]:
                raise CheckpointError(f"{model}: tensor {name} is missing (needed for {group.out_name})")
            shapes[model] = readers[model].shape(name)
        if len(set(shapes.values())) > 1:
            detail = ", ".join(f"{m}: {list(s)}" for m, s in shapes.items())
            raise CheckpointError(f"incompatible shapes for tensor {group.out_name}: {detail}")
        model, name = group.inputs[0]
        specs.append(TensorSpec(group.out_name, readers[model].dtype(name), next(iter(shapes.values()))))
    return specs


# ---------------------------------------------------------------------------------------------------------
# Computing one tensor with its method (compress.merge_methods holds the formulas)


def tensor_generator(seed: int, tensor_name: str, model: str) -> torch.Generator:
    """A generator of its own for each (tensor, model): results do not depend on processing order."""
    digest = hashlib.sha256(f"{seed}\0{tensor_name}\0{model}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def merge_group(
    cfg: MergeConfig, group: TensorGroup, load: Callable[[str, str], torch.Tensor]
) -> torch.Tensor:
    """Compute one output tensor with the configured method's formula.

    Integer tensors (position ids, masks saved as buffers) have no meaningful average: the base's is kept."""
    tensors = {model: load(model, name) for model, name in group.inputs}
    if not next(iter(tensors.values())).is_floating_point():
        return tensors[group.base or group.inputs[0][0]]
    others = [m for m, _ in group.inputs if m != group.base]
    inputs = MergeInputs(
        base=tensors[group.base] if group.base is not None else None,
        others=[tensors[m] for m in others],
        per_model=[group.per_model[m] for m in others],
        shared=group.shared,
        generators=[tensor_generator(cfg.seed, group.out_name, m) for m in others],
    )
    return method_named(cfg.merge_method).merge(inputs)


# ---------------------------------------------------------------------------------------------------------
# Entry points


def load_merge_config(path: str | Path) -> MergeConfig:
    """Read a mergekit-style YAML file, or a biomamba recipe with a `merge:` section (the file parsed once)."""
    recipe = load_recipe_or_merge_file(path, missing="merge config not found")
    if "merge" not in recipe:
        raise RecipeError(str(path), "merge", "no merge section (and no top-level merge_method)")
    return load_section(recipe, "merge", MergeConfig, str(path))


def _referenced_models(cfg: MergeConfig) -> list[str]:
    names = [m.model for m in cfg.models or []]
    for out_slice in cfg.slices or []:
        names += [s.model for s in out_slice.sources] + [out_slice.base_model]
    return [name for name in dict.fromkeys([*names, cfg.base_model]) if name]  # each once, unset ones out


def merge(cfg: MergeConfig, output_dir: str | Path) -> Path:
    """Merge the configured checkpoints into `output_dir` (safetensors shards, config, tokenizer).

    Memory stays near one tensor per input model: tensors are read lazily and written as soon as merged.
    """
    readers = {name: CheckpointReader(name) for name in _referenced_models(cfg)}
    groups = plan_merge(cfg, readers)
    specs = check_compatible(groups, readers)
    in_dtype = torch_dtype(cfg.dtype) if cfg.dtype else None
    out_name = cfg.out_dtype or cfg.dtype
    out_dtype = torch_dtype(out_name) if out_name else None
    specs = [
        TensorSpec(s.name, out_dtype if out_dtype and s.dtype.is_floating_point else s.dtype, s.shape)
        for s in specs
    ]
    config_source = Path(cfg.base_model or groups[0].inputs[0][0])
    tokenizer_dir = config_source if cfg.tokenizer_source in (None, "base") else Path(cfg.tokenizer_source)
    with atomic_dir(output_dir) as tmp:
        writer = StreamingShardWriter(tmp, specs, cfg.max_shard_size, {"merge_method": cfg.merge_method})
        for group, spec in zip(groups, specs, strict=True):
            tensor = merge_group(cfg, group, lambda m, n: readers[m].get(n, in_dtype))
            writer.write(group.out_name, tensor.to(spec.dtype))
        writer.close()
        _write_config(config_source, tmp, out_layers=_layer_count(g.out_name for g in groups), dtype=out_name)
        copy_files(tokenizer_dir, tmp)  # the tokenizer files
        (tmp / "merge_config.yaml").write_text(
            yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), sort_keys=False)
        )
    return Path(output_dir)


def _write_config(source: Path, out: Path, out_layers: int, dtype: str | None) -> None:
    path = source / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{source}: config.json not found")
    config = json.loads(path.read_text())
    for key in LAYER_COUNT_KEYS:
        if key in config and out_layers:
            config[key] = out_layers
    if dtype:
        config.update(torch_dtype=dtype, dtype=dtype)  # the older and the newer transformers key
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    generation = source / "generation_config.json"
    if generation.is_file():
        shutil.copy2(generation, out / generation.name)
