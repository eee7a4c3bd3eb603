"""`biomamba recipe check FILE`: validate a recipe without running anything."""

from __future__ import annotations

from pathlib import Path

import typer

from biomamba.config.command_line import command_group, command_line_overrides, set_option
from biomamba.config.recipe import check_recipe


def register(app: typer.Typer) -> None:
    recipe_app = command_group(app, "recipe", "Inspect and validate recipe files.")

    @recipe_app.command("check")
    def check(
        recipe: Path = typer.Argument(..., help="Recipe YAML file."),
        set_: list[str] = set_option("train.lr=1e-4"),
    ) -> None:
        """Validate every section of RECIPE; print the sections found, or one line naming the bad key."""
        sections = check_recipe(recipe, command_line_overrides({}, set_))
        typer.echo(f"{recipe}: ok ({', '.join(sections) or 'no sections'})")
