"""How a command turns its recipe, `--set` options and flags into one config: the one rule every CLI follows
(docs/ARCHITECTURE.md, "How a command reads its config"); `PRECEDENCE` states it in every command's --help.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from biomamba.config.recipe import (
    SectionT,
    load_recipe_dict,
    load_section,
    merge_overrides,
    parse_set_options,
)
from biomamba.errors import BiomambaError

PRECEDENCE = (
    "A setting given more than once: a flag beats --set section.key=value, and --set beats the recipe file."
)


def set_option(example: str) -> Any:
    """The `--set` option of every command that reads a recipe (the middle rank of PRECEDENCE), declared once
    so that each says the same; `example` is a `section.key=value` of the command's own section."""
    import typer

    return typer.Option(None, "--set", help=f"Override any recipe key, e.g. --set {example} (repeatable).")


def command_group(app: Any, name: str, help: str) -> Any:
    """The `biomamba NAME VERB` group of a stage with several verbs, mounted on the root `app`; declared once
    so that every group behaves alike (bare `biomamba NAME` prints its help). Add the verbs to it after."""
    import typer

    group = typer.Typer(help=help, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


def command_line_overrides(flags: Mapping[str, Any], sets: Iterable[str] | None) -> dict[str, Any]:
    """The dotted overrides a command applies to its recipe, ordered by PRECEDENCE: `--set`, then the flags.

    `flags` maps dotted recipe keys to flag values, None meaning "not given" (so it never erases a value).
    Why a flag wins: it is the most specific thing the user typed, naming one key of one command."""
    return {**parse_set_options(sets), **{key: value for key, value in flags.items() if value is not None}}


def command_line_recipe(
    recipe: str | Path | None, flags: Mapping[str, Any], sets: Iterable[str] | None
) -> dict[str, Any]:
    """The recipe a command runs: the file (or nothing, without one) under `command_line_overrides`."""
    raw = load_recipe_dict(recipe) if recipe is not None else {}
    return merge_overrides(raw, command_line_overrides(flags, sets))


def load_stage_config(
    recipe: str | Path | None,
    section: str,
    schema: type[SectionT],
    flags: Mapping[str, Any],
    sets: Iterable[str] | None,
) -> tuple[SectionT, dict[str, Any]]:
    """(the validated `section`, the whole recipe as the command line left it); errors name the recipe file,
    or "flags" when the command was given none."""
    raw = command_line_recipe(recipe, flags, sets)
    return load_section(raw, section, schema, str(recipe) if recipe is not None else "flags"), raw


def parse_named_values(
    values: Iterable[str] | None, flag: str, bare_name: Callable[[str], str] | None = None
) -> dict[str, str]:
    """Parse repeatable NAME=VALUE options (`--task-file`, `--text` ...) into {name: value}, split at the first
    "=" so a value (a path) may hold one. A bare VALUE is named `bare_name(VALUE)`; without `bare_name` it is an
    error naming the flag, because that option has no sensible default name."""
    named: dict[str, str] = {}
    for value in values or ():
        name, sep, rest = value.partition("=")
        if not sep and bare_name is None:
            raise BiomambaError(f"{flag} {value!r}: expected NAME=PATH")
        named[name.strip() if sep else bare_name(value)] = (rest if sep else value).strip()
    return named
