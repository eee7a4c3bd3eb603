"""Recipe files: YAML validated against pydantic schemas, with CLI flags that override recipe values.

See `biomamba.config.recipe` for the rules, `biomamba.config.command_line` for the one way a command combines
its recipe, `--set` and flags, and docs/ARCHITECTURE.md ("How a command reads its config").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biomamba.utils.lazy import lazy_exports

if TYPE_CHECKING:  # the public names: type checkers read them, `lazy_exports` imports them on first use
    from biomamba.config.command_line import (  # noqa: F401
        PRECEDENCE,
        command_line_overrides,
        command_line_recipe,
        load_stage_config,
    )
    from biomamba.config.recipe import (  # noqa: F401
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

__all__, __getattr__ = lazy_exports(__name__, __file__)
