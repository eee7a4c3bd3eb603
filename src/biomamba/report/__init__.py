"""report stage: results JSON files -> markdown tables and PNG bar charts with 95% intervals.

Python API: `render_report(results_files, output_dir) -> {"markdown": path, "accuracy_chart": path, ...}`.
The first file is the reference ("before"); later files get paired differences against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biomamba.utils.lazy import lazy_exports

if TYPE_CHECKING:  # the public names: type checkers read them, `lazy_exports` imports them on first use
    from biomamba.report.render import render_report  # noqa: F401

__all__, __getattr__ = lazy_exports(__name__, __file__)
