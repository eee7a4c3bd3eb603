"""Recipe sections of the compress stage: `quantize`, `merge` and `export`.

`merge` follows mergekit's YAML layout (merge_method, base_model, models/slices, parameters, dtype) so a
mergekit config such as BioMistral's SLERP recipe can be used as it is; biomamba adds only `seed` (DARE's
random drops) and `max_shard_size`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from biomamba.config import Section

Dtype = Literal["float32", "float16", "bfloat16", "float64"]  # torch dtype names a merge reads and writes


class QuantizeConfig(Section):
    """Weight-only quantization of a trained model directory."""

    method: Literal["int8", "int4", "bnb-int8", "bnb-nf4", "bnb-fp4"] = "int8"
    group_size: PositiveInt = Field(128, description="Weights per scale for int4 (and grouped int8).")
    backend: Literal["auto", "torchao", "biomamba"] = Field(
        "auto", description="auto: torchao where it handles the layer, biomamba's own kernel elsewhere."
    )
    device: str = "cpu"
    skip_modules: list[str] = Field(
        default_factory=lambda: ["lm_head"],
        description="Linear layers kept in full precision (name substrings); the output head by default.",
    )
    eval_corpus: Path | None = Field(None, description="Corpus dir whose held-out shards give perplexity.")
    eval_tasks: list[Path] = Field(default_factory=list, description="Multiple-choice task files to score.")
    eval_max_tokens: PositiveInt = 20_000
    bench_new_tokens: PositiveInt = 32

    @field_validator("group_size")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError("group_size must be a power of two (32, 64, 128, 256)")
        return value


class InputModel(Section):
    """One entry of mergekit's `models:` list."""

    model: str
    parameters: dict[str, Any] | None = None


class SliceSource(Section):
    """One source of a mergekit slice: a model and the half-open layer range taken from it."""

    model: str
    layer_range: tuple[int, int]
    parameters: dict[str, Any] | None = None

    @field_validator("layer_range")
    @classmethod
    def _ordered(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= value[0] < value[1]:
            raise ValueError("layer_range must be [start, end) with 0 <= start < end")
        return value


class OutputSlice(Section):
    """One output slice: the same number of layers from every source, merged layer by layer."""

    sources: list[SliceSource] = Field(min_length=1)
    base_model: str | None = None
    parameters: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _same_length(self) -> OutputSlice:
        lengths = {s.layer_range[1] - s.layer_range[0] for s in self.sources}
        if len(lengths) > 1:
            raise ValueError("all sources of a slice must span the same number of layers")
        return self


class MergeConfig(Section):
    """A merge in mergekit's YAML layout (see docs/compress.md for the methods and their parameters).

    What a method allows (its name, whether it needs `base_model`, how many models it merges, which
    `parameters:` keys it reads and where) comes from its row in `compress.merge_methods`, imported only here
    in the validators so that reading a recipe without a merge does not load torch."""

    merge_method: str = Field(description="A registered method: see biomamba.compress.merge_methods.METHODS.")
    base_model: str | None = None
    models: list[InputModel] | None = None
    slices: list[OutputSlice] | None = None
    parameters: dict[str, Any] | None = None
    dtype: Dtype | None = None
    out_dtype: Dtype | None = None
    tokenizer_source: str | None = Field(None, description="'base' (default), or a model path to copy from.")
    seed: int = Field(0, description="Seed of DARE's random drops (each tensor gets its own stream).")
    max_shard_size: PositiveInt = Field(2 * 1024**3, description="Bytes per output safetensors shard.")
    output_dir: str | None = None

    @field_validator("merge_method")
    @classmethod
    def _registered(cls, value: str) -> str:
        from biomamba.compress.merge_methods import method_named

        method_named(value)
        return value

    @model_validator(mode="after")
    def _check_layout(self) -> MergeConfig:
        from biomamba.compress.merge_methods import method_named

        if bool(self.models) == bool(self.slices):
            raise ValueError("give exactly one of `models:` or `slices:`")
        method = method_named(self.merge_method)
        if (
            method.needs_base
            and not self.base_model
            and not (self.slices and all(s.base_model for s in self.slices))
        ):
            raise ValueError(f"merge_method {self.merge_method} needs base_model")
        if method.non_base_inputs is not None:
            others = method.non_base_inputs
            for group in self._input_groups():
                if len((set(group) | {self.base_model}) - {None}) != others + 1:
                    raise ValueError(
                        f"{self.merge_method} merges exactly {_in_words(others + 1)} models: base_model and "
                        f"{_in_words(others)} other{'s' if others > 1 else ''}"
                    )
        self._check_parameter_names(set(method.shared_params()), set(method.per_model_params()))
        return self

    def _check_parameter_names(self, shared: set[str], per_model: set[str]) -> None:
        """A key the method does not read would be silently ignored (a typo'd `densty` keeps density 1)."""
        scopes: list[tuple[str, dict[str, Any] | None, set[str]]] = [
            ("parameters", self.parameters, shared | per_model)
        ]
        for i, model in enumerate(self.models or []):
            scopes.append((f"models.{i}.parameters", model.parameters, per_model))
        for i, out in enumerate(self.slices or []):
            scopes.append((f"slices.{i}.parameters", out.parameters, shared | per_model))
            for j, source in enumerate(out.sources):
                scopes.append((f"slices.{i}.sources.{j}.parameters", source.parameters, per_model))
        for where, given, allowed in scopes:
            for key in sorted(set(given or {}) - allowed):
                if key in shared:
                    raise ValueError(
                        f"{where}: '{key}' is one value for all models of {self.merge_method}; set it in "
                        "the global or the slice's parameters"
                    )
                known = ", ".join(sorted(shared | per_model))
                raise ValueError(f"{where}: {self.merge_method} has no parameter '{key}' (known: {known})")

    def _input_groups(self) -> list[list[str]]:
        if self.models:
            return [[m.model for m in self.models]]
        return [[s.model for s in out.sources] for out in self.slices or []]


def _in_words(count: int) -> str:
    return ("no", "one", "two", "three", "four")[count] if count < 5 else str(count)


class ExportConfig(Section):
    """A release directory: weights, tokenizer, generation config and a model card."""

    formats: list[Literal["transformers", "mamba_ssm", "gguf"]] | None = Field(
        None,
        description="Weight formats to write; default: transformers, plus mamba_ssm for an unquantized Mamba2.",
    )
    gguf_quant: list[Literal["f16", "q8_0", "q4_k_m"]] = Field(
        default_factory=lambda: ["q8_0"], description="GGUF files to write (format gguf): one per type."
    )
    recipe: Path | None = Field(None, description="Training recipe whose settings fill the model card.")
    results: list[Path] = Field(default_factory=list, description="Evaluation results JSON files.")
    model_name: str | None = None
    license: str = "apache-2.0"
    base_model: str | None = None
    language: list[str] = Field(default_factory=lambda: ["en"])
    max_new_tokens: PositiveInt = 256
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)

    @field_validator("formats")
    @classmethod
    def _nonempty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("list at least one format (transformers, mamba_ssm, gguf)")
        return value

    @model_validator(mode="after")
    def _quant_needs_gguf(self) -> ExportConfig:
        if "gguf_quant" in self.model_fields_set and "gguf" not in (self.formats or []):
            raise ValueError(
                "gguf_quant (--quant) applies to GGUF files: add gguf to formats (--format gguf)"
            )
        return self
