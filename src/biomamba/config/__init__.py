"""Recipe files: YAML validated against pydantic schemas, with CLI flags that override recipe values.

See `biomamba.config.recipe` for the rules, `biomamba.config.command_line` for how a command combines its
recipe, `--set` and flags (one rule, `PRECEDENCE`), and docs/ARCHITECTURE.md for the user-facing description.
Names are imported lazily, so a command's `--help` reads `PRECEDENCE` without loading pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biomamba.utils.lazy import lazy_exports

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and readers; never run
    from biomamba.config.command_line import (  # noqa: F401
        PRECEDENCE,
        command_line_overrides,
        command_line_recipe,
        load_stage_config,
    )
    from biomamba.config.recipe import (  # noqa: F401
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

_EXPORTS = {
    **dict.fromkeys(
        ["PRECEDENCE", "command_line_overrides", "command_line_recipe", "load_stage_config"],
        "biomamba.config.command_line",
    ),
    **dict.fromkeys(
        [
            "ExistingDir",
            "ExistingFile",
            "Section",
            "check_recipe",
            "is_mergekit_merge",
            "load_recipe_dict",
            "load_recipe_or_merge_file",
            "load_section",
            "merge_overrides",
            "parse_set_options",
            "validate_recipe",
        ],
        "biomamba.config.recipe",
    ),
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
