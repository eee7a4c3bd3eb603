"""report stage: results JSON files -> markdown tables and PNG bar charts with 95% intervals.

Python API: `render_report(results_files, output_dir) -> {"markdown": path, "accuracy_chart": path, ...}`.
The first file is the reference ("before"); later files get paired differences against it.
"""

from __future__ import annotations

from typing import Any


def render_report(results_files: Any, output_dir: Any) -> Any:
    from biomamba.report.render import render_report as _render

    return _render(results_files, output_dir)


__all__ = ["render_report"]
