"""The merge methods: one registry row per method, each declaring its parameters, its base-model contract
and its formula (the shape of mergekit's `merge_methods/base.py` + `registry.py`).

Why a registry: everything else derives from it. `MergeConfig` (compress/config.py) takes its allowed
`merge_method` names, its "needs a base model" rule, the input-count rule and the list of parameter names it
accepts from here; `compress.merge` asks the row for its parameter defaults and calls its `merge`. A new
method is one `register(...)` call below (plus its tests); see docs/ARCHITECTURE.md, "Adding a merge method".

The formulas mirror mergekit's kernels in the same order of float operations, so
tests/compress/test_merge_parity.py can compare the two within 1e-6. This module imports nothing of
biomamba's: the config layer imports it lazily (only when it validates a `merge:` section), so reading a
recipe without a merge does not load torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import torch

REQUIRED: Any = object()  # the default of a parameter every tensor must resolve


@dataclass(frozen=True)
class Param:
    """One parameter of a method, as a YAML `parameters:` key.

    `per_model`: each non-base input model has its own value (mergekit's NON_BASE/INPUT scope: `weight`,
    `density`), resolved from the model's own `parameters`, then the slice's, then the global ones; otherwise
    one value for every input (mergekit's SHARED scope: `t`, `normalize`), from the slice or global ones only.
    Either kind may still vary per tensor through mergekit's filters and layer gradients.
    """

    name: str
    default: Any = REQUIRED
    per_model: bool = False


@dataclass
class MergeInputs:
    """One output tensor's inputs, parameters resolved for that tensor.

    `others` are the non-base inputs (every input for a method that takes no base), in config order, with
    `per_model[i]` and `generators[i]` (DARE's seeded random stream) belonging to `others[i]`."""

    base: torch.Tensor | None
    others: list[torch.Tensor]
    per_model: list[dict[str, Any]]
    shared: dict[str, Any]
    generators: list[torch.Generator]


class MergeMethod(ABC):
    """A merge method: its name, declared parameters, base-model contract and per-tensor formula."""

    name: str
    needs_base: bool  # True: `base_model` is required and kept out of `others`; False: the base is ignored
    params: tuple[Param, ...]
    non_base_inputs: int | None = None  # exact number of non-base models per tensor, when fixed (SLERP: 1)

    @abstractmethod
    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        """The merged tensor, in the inputs' dtype."""

    def shared_params(self) -> dict[str, Any]:
        """{name: default} of the parameters that take one value per tensor."""
        return {p.name: p.default for p in self.params if not p.per_model}

    def per_model_params(self) -> dict[str, Any]:
        """{name: default} of the parameters each non-base model sets for itself."""
        return {p.name: p.default for p in self.params if p.per_model}


# ---------------------------------------------------------------------------------------------------------
# The kernels (each mirrors mergekit's, in the same order of float operations)


def linear(tensors: list[torch.Tensor], weights: list[float], normalize: bool) -> torch.Tensor:
    """Weighted average sum(w_i x_i) / sum(w_i) (or the plain weighted sum without normalize)."""
    first = tensors[0]
    dtype = torch.float64 if first.dtype == torch.float64 else torch.float32
    result = torch.zeros_like(first, dtype=dtype)
    for tensor, weight in zip(tensors, weights, strict=True):
        result.add_(tensor.to(dtype) * torch.tensor(weight, dtype=dtype))
    if normalize:
        result.div_(torch.tensor(sum(weights), dtype=dtype))
    return result.to(first.dtype)


def slerp(
    t: float, v0: torch.Tensor, v1: torch.Tensor, dot_threshold: float = 0.9995, eps: float = 1e-8
) -> torch.Tensor:
    """Spherical interpolation between two whole tensors (t=0 gives v0); near-collinear falls back to lerp."""
    dtype = torch.float64 if v0.dtype == torch.float64 else torch.float32
    a = v0.reshape(1, -1).to(dtype)
    b = v1.reshape(1, -1).to(dtype)
    tt = torch.tensor([[t]], dtype=dtype)
    if not a.shape[1]:
        return ((1 - tt) * a + tt * b).reshape(v0.shape).to(v0.dtype)
    norm_a = torch.linalg.vector_norm(torch.linalg.vector_norm(a, dim=1, keepdim=True)[None], dim=0)
    norm_b = torch.linalg.vector_norm(torch.linalg.vector_norm(b, dim=1, keepdim=True)[None], dim=0)
    norm_a = torch.where(norm_a > eps, norm_a, 1)
    norm_b = torch.where(norm_b > eps, norm_b, 1)
    dot = ((a / norm_a) * (b / norm_b)).sum(dim=1, keepdim=True).clamp(-1, 1)
    is_linear = dot.abs() > dot_threshold
    theta = torch.acos(torch.where(is_linear, 0, dot))
    sin_theta = torch.sin(theta)
    coef_a = torch.where(is_linear, 1 - tt, torch.sin((1 - tt) * theta) / sin_theta)
    coef_b = torch.where(is_linear, tt, torch.sin(tt * theta) / sin_theta)
    return (coef_a * a + coef_b * b).reshape(v0.shape).to(v0.dtype)


def _rescaled(delta: torch.Tensor, mask: torch.Tensor, rescale: bool, eps: float = 1e-7) -> torch.Tensor:
    masked = delta * mask
    if not rescale:
        return masked
    before, after = delta.abs().sum(), masked.abs().sum()
    if before < eps or after < eps:
        return masked
    return masked * (before / after)


def magnitude_prune(delta: torch.Tensor, density: float, rescale: bool) -> torch.Tensor:
    """TIES trimming: keep the `density` fraction of entries with the largest magnitude."""
    if density >= 1:
        return delta
    if density <= 0 or delta.numel() == 0:
        return torch.zeros_like(delta)
    k = max(1, int(density * delta.numel()))
    mask = torch.zeros(delta.numel(), dtype=delta.dtype)
    magnitudes = delta.abs().reshape(-1).float()
    mask[torch.argsort(magnitudes, descending=True)[:k]] = 1
    return _rescaled(delta, mask.reshape_as(delta), rescale)


def random_prune(
    delta: torch.Tensor, density: float, rescale: bool, generator: torch.Generator
) -> torch.Tensor:
    """DARE: drop each entry with probability 1 - density, rescaling to keep the l1 norm (rescale=True)."""
    if density >= 1:
        return delta
    work = delta.dtype if delta.dtype == torch.bfloat16 else torch.float32
    mask = torch.bernoulli(torch.full(delta.shape, density, dtype=work), generator=generator)
    return _rescaled(delta.to(work), mask, rescale).to(delta.dtype)


def sign_consensus_mask(deltas: torch.Tensor) -> torch.Tensor:
    """TIES sign election: keep entries whose sign agrees with the sign of the summed deltas."""
    sign = deltas.sign().to(deltas.dtype)
    majority = (deltas.sum(dim=0) >= 0).to(deltas.dtype) * 2 - 1
    return sign == majority


# ---------------------------------------------------------------------------------------------------------
# The methods


@dataclass(frozen=True)
class Linear(MergeMethod):
    """Weighted average of every input (a listed base model is just one more input)."""

    name: str = "linear"
    needs_base: bool = False
    params: tuple[Param, ...] = (Param("weight", per_model=True), Param("normalize", True))

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        weights = [float(p["weight"]) for p in inputs.per_model]
        return linear(inputs.others, weights, bool(inputs.shared["normalize"]))


@dataclass(frozen=True)
class Slerp(MergeMethod):
    """Spherical interpolation from the base model (t=0) to the one other model (t=1)."""

    name: str = "slerp"
    needs_base: bool = True
    params: tuple[Param, ...] = (Param("t"),)
    non_base_inputs: int | None = 1

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        assert inputs.base is not None
        return slerp(float(inputs.shared["t"]), inputs.base, inputs.others[0])


@dataclass(frozen=True)
class TaskArithmetic(MergeMethod):
    """base + lambda * combine(w_i * sparsify(x_i - base)): task arithmetic, TIES and DARE are rows of this
    one class differing in sparsification, sign consensus and the defaults of normalize/rescale (mergekit's
    GeneralizedTaskArithmeticMerge)."""

    name: str
    sparsify: Literal["magnitude", "random"] | None
    consensus: bool
    default_normalize: bool
    default_rescale: bool
    needs_base: bool = True

    @property
    def params(self) -> tuple[Param, ...]:  # type: ignore[override]
        return (
            Param("int8_mask", False),
            Param("normalize", self.default_normalize),
            Param("rescale", self.default_rescale),
            Param("lambda", 1.0),
            Param("weight", per_model=True),
            Param("density", 1.0, per_model=True),
        )

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        assert inputs.base is not None
        base = inputs.base
        if not inputs.others:
            return base
        rescale = bool(inputs.shared["rescale"])
        deltas = base.new_empty((len(inputs.others), *base.shape))
        for i, (tensor, p) in enumerate(zip(inputs.others, inputs.per_model, strict=True)):
            delta = tensor - base
            if self.sparsify == "magnitude":
                delta = magnitude_prune(delta, float(p["density"]), rescale)
            elif self.sparsify == "random":
                delta = random_prune(delta, float(p["density"]), rescale, inputs.generators[i])
            deltas[i] = delta
        weights = torch.tensor([float(p["weight"]) for p in inputs.per_model], dtype=deltas.dtype)
        while deltas.dim() > weights.dim():
            weights.unsqueeze_(-1)
        deltas.mul_(weights)
        if self.consensus:
            mask = sign_consensus_mask(deltas)
            mixed = (deltas * mask).sum(dim=0)
            divisor = (weights * mask).sum(dim=0)
            divisor[divisor == 0] = 1
        else:
            mixed = deltas.sum(dim=0)
            divisor = weights.sum(dim=0)
            divisor[divisor.abs() < 1e-8] = 1
        if inputs.shared["normalize"]:
            mixed /= divisor
        scale = float(inputs.shared["lambda"])
        if scale != 1:
            mixed *= scale
        return (base + mixed).to(base.dtype)


# ---------------------------------------------------------------------------------------------------------
# The registry

METHODS: dict[str, MergeMethod] = {}


def register(method: MergeMethod) -> MergeMethod:
    """Make a method available by name (to configs, `biomamba merge` and the docs); names are unique."""
    if method.name in METHODS:
        raise ValueError(f"merge method {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def method_named(name: str) -> MergeMethod:
    """The registered method called `name`; a ValueError listing the known names otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown merge_method {name!r} (known: {', '.join(sorted(METHODS))})")
    return METHODS[name]


register(Linear())
register(Slerp())
register(TaskArithmetic("task_arithmetic", None, False, default_normalize=False, default_rescale=False))
register(TaskArithmetic("ties", "magnitude", True, default_normalize=True, default_rescale=False))
register(TaskArithmetic("dare_ties", "random", True, default_normalize=False, default_rescale=True))
register(TaskArithmetic("dare_linear", "random", False, default_normalize=False, default_rescale=True))
