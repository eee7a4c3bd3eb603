"""Recipe files: YAML validated against pydantic schemas, with CLI flags that override recipe values.

See `biomamba.config.recipe` for the rules, and docs/recipes.md for the user-facing description.
"""

from biomamba.config.recipe import (
    ExistingDir,
    ExistingFile,
    Section,
    check_recipe,
    is_mergekit_merge,
    load_recipe_dict,
    load_recipe_or_merge_file,
    load_section,
    merge_overrides,
    parse_set_options,
    validate_recipe,
)

__all__ = [
    "ExistingDir",
    "ExistingFile",
    "Section",
    "check_recipe",
    "validate_recipe",
    "is_mergekit_merge",
    "load_recipe_dict",
    "load_recipe_or_merge_file",
    "load_section",
    "merge_overrides",
    "parse_set_options",
]
