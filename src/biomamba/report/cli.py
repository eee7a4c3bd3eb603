"""CLI of the report stage: `biomamba report RESULTS... --output DIR`."""

from __future__ import annotations

from pathlib import Path

import typer

HELP = """Turn one or more results JSON files (from `biomamba eval run`) into markdown tables and PNG bar
charts with 95% intervals. The FIRST file is the reference: every later model gets its paired difference
against it, and general benchmarks losing more than 3 points are flagged (forgetting).

Example: biomamba report runs/base/eval.json runs/pubmed/eval.json --output runs/pubmed/report"""


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""

    @app.command("report", help=HELP)
    def report(
        results: list[Path] = typer.Argument(..., help="Results JSON files; the first is the reference."),
        output: Path = typer.Option(
            Path("runs/report"), "--output", "--output-dir", help="Output directory."
        ),
    ) -> None:
        from biomamba.report.render import render_report

        paths = render_report(results, output)
        for name, path in paths.items():
            typer.echo(f"{name}: {path}")
