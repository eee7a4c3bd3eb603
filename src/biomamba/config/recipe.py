"""Recipe loading and validation.

A recipe is one YAML mapping. Its top level holds a few run-wide keys (name, description, seed,
output_dir) and one section per pipeline stage (data, tokenizer, model, train, eval, finetune, quantize,
merge, export, serve). Each stage owns the pydantic schema of its section; this module only knows where
those schemas live (SECTION_SCHEMAS), so a stage can evolve its schema without touching the others.

Rules a user can rely on:
- an unknown key, a wrong type, a missing file or an impossible value is ONE line naming the file and the
  dotted key (raised as `RecipeError`, which the CLI prints and exits with status 2);
- every CLI flag may also come from the recipe, and `--set section.key=value` sets any key, the value parsed
  as YAML (so `--set train.lr=1e-4` is a float); a flag beats `--set`, which beats the recipe
  (`biomamba.config.command_line`, the one place that applies this rule);
- relative paths are relative to the current working directory (as for every other CLI tool).
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from biomamba.errors import RecipeError

# Section name -> "module:Class" of its schema. Imported lazily so `biomamba --help` stays fast.
SECTION_SCHEMAS: dict[str, str] = {
    "data": "biomamba.data.config:DataConfig",
    "tokenizer": "biomamba.tokenizer.config:TokenizerConfig",
    "model": "biomamba.models.config:ModelConfig",
    "train": "biomamba.train.config:TrainConfig",
    "eval": "biomamba.eval.config:EvalConfig",
    "finetune": "biomamba.finetune.config:FinetuneConfig",
    "quantize": "biomamba.compress.config:QuantizeConfig",
    "merge": "biomamba.compress.config:MergeConfig",
    "export": "biomamba.compress.config:ExportConfig",
    "serve": "biomamba.serve.config:ServeConfig",
    "demo": "biomamba.demo.config:DemoConfig",
}
TOP_LEVEL_KEYS: dict[str, type] = {"name": str, "description": str, "seed": int, "output_dir": str}

SectionT = TypeVar("SectionT", bound=BaseModel)


class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def _must_be_file(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return path


ExistingFile = Annotated[Path, AfterValidator(_must_be_file)]


def read_yaml_mapping(path: str | Path, missing: str = "recipe file not found") -> dict[str, Any]:
    """Parse a YAML file that must hold a mapping (an empty file is {}); every problem is one line."""
    source = str(path)
    recipe_path = Path(path)
    if not recipe_path.is_file():
        raise RecipeError(source, None, missing)
    try:
        data = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(source, None, f"invalid YAML{where}: {problem}") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(source, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(source, None, f"a recipe must be a mapping of keys, got {type(data).__name__}")
    return data


def load_recipe_dict(path: str | Path) -> dict[str, Any]:
    """Read a recipe file into a dict, checking only that it is a YAML mapping with known top-level keys."""
    data = read_yaml_mapping(path)
    _check_top_level(data, str(path))
    return data


def is_mergekit_merge(data: Mapping[str, Any]) -> bool:
    """Whether a parsed file is in mergekit's layout: the merge section's keys at the top level.

    Told by shape (`merge_method` is a merge key, never a recipe key), so this layer needs nothing of the
    compress stage to know a merge file when it sees one."""
    return "merge_method" in data


def load_recipe_or_merge_file(path: str | Path, missing: str = "recipe file not found") -> dict[str, Any]:
    """Read a recipe, or a mergekit-style merge file as the recipe `{merge: <file>}`; the file is parsed once.

    What `biomamba merge` and `biomamba recipe check` accept."""
    data = read_yaml_mapping(path, missing)
    if is_mergekit_merge(data):
        return {"merge": data}
    _check_top_level(data, str(path))
    return data


def _check_top_level(data: Mapping[str, Any], source: str) -> None:
    known = set(TOP_LEVEL_KEYS) | set(SECTION_SCHEMAS)
    for key, value in data.items():
        if key not in known:
            raise RecipeError(source, str(key), f"unknown key (known: {', '.join(sorted(known))})")
        expected = TOP_LEVEL_KEYS.get(key)
        if expected is not None and not isinstance(value, expected):
            raise RecipeError(source, key, f"expected {expected.__name__}, got {type(value).__name__}")
        if key in SECTION_SCHEMAS and value is not None and not isinstance(value, dict):
            raise RecipeError(source, key, f"a section must be a mapping, got {type(value).__name__}")


def parse_set_options(options: Iterable[str] | None) -> dict[str, Any]:
    """Parse `--set a.b=value` options into a flat {dotted key: value} dict (values parsed as YAML)."""
    result: dict[str, Any] = {}
    for option in options or ():
        if "=" not in option:
            raise RecipeError("--set", option, "expected KEY=VALUE, e.g. --set train.lr=1e-4")
        key, raw = option.split("=", 1)
        key = key.strip()
        if not key:
            raise RecipeError("--set", option, "empty key")
        try:
            result[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            result[key] = raw
    return result


def merge_overrides(recipe: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of `recipe` with dotted-key overrides applied in order; None values are skipped.

    Overrides win over the recipe: that is why a flag left at None (not given) must not erase a recipe value.
    """
    merged = copy.deepcopy(recipe)
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = merged
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise RecipeError("override", dotted, f"'{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return merged


def load_section(
    recipe: Mapping[str, Any],
    section: str,
    schema: type[SectionT],
    source: str = "recipe",
    context: Mapping[str, Any] | None = None,
) -> SectionT:
    """Validate one section of a recipe dict with its schema, turning pydantic errors into one clear line.

    `context` reaches the schema's validators (pydantic validation context), e.g. to say that a key is
    filled in at run time by another stage."""
    raw = recipe.get(section) or {}
    try:
        return schema.model_validate(raw, context=dict(context) if context else None)
    except ValidationError as exc:
        raise _recipe_error_from(exc, source, section) from None


def _recipe_error_from(exc: ValidationError, source: str, section: str) -> RecipeError:
    errors = exc.errors()
    first = errors[0]
    key = ".".join(str(part) for part in (section, *first["loc"]))
    message = _describe(first)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return RecipeError(source, key, message)


def _describe(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    given = error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if given is not None and not isinstance(given, dict | list):
        message += f" (got {given!r})"
    return message


def schema_for(section: str) -> type[BaseModel]:
    """Import and return the schema class registered for `section`."""
    module_name, _, class_name = SECTION_SCHEMAS[section].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def check_recipe(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, BaseModel]:
    """Validate every section present in a recipe file; return the validated sections by name.

    A mergekit-style merge file (top-level `merge_method`, as `biomamba merge` accepts) is checked as the
    merge section it is. In the demo recipe the demo writes `data.sources` itself, so they may be empty."""
    recipe = load_recipe_or_merge_file(path)
    return validate_recipe(merge_overrides(recipe, overrides or {}), str(path))


def validate_recipe(recipe: Mapping[str, Any], source: str = "recipe") -> dict[str, BaseModel]:
    """Validate every section of a loaded recipe, so a long run fails before its first step, not its last."""
    context = {"sources_filled_by_demo": True} if "demo" in recipe else None
    return {
        name: load_section(recipe, name, schema_for(name), source, context)
        for name in SECTION_SCHEMAS
        if name in recipe
    }
