"""--plot: a PNG overlaying the per-step training losses of the backend and of the reference."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import PolynnError

if TYPE_CHECKING:
    from .report import Report

_MISSING = "writing a plot needs matplotlib, which is not installed. Install it with: pip install 'polynn[plot]'"


def require_matplotlib() -> tuple[Any, Any]:
    """matplotlib's Agg canvas and Figure, or a PolynnError naming the extra that installs them."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise PolynnError(f"{_MISSING} ({error})") from None
    return FigureCanvasAgg, Figure


def write_plot(report: Report, path: str | os.PathLike[str]) -> None:
    FigureCanvasAgg, Figure = require_matplotlib()
    panels = [(result.name, name, pair) for result in report.results for name, pair in result.series.items()]
    if not panels:
        raise PolynnError(f"nothing to plot in {path}: no case with per-step losses ran "
                          "(the blog and scenario cases have them)")
    # The object-oriented API leaves matplotlib's global backend and pyplot state alone.
    figure = Figure(figsize=(9, 3.2 * len(panels)))
    FigureCanvasAgg(figure)
    for row, (case, name, pair) in enumerate(panels, start=1):
        axes = figure.add_subplot(len(panels), 1, row)
        axes.plot(pair["reference"], label="numpy (reference)", linewidth=1.2)
        axes.plot(pair["backend"], label=report.backend.name, linewidth=1.0, linestyle="--")
        axes.set_title(f"{case} ({name}), {report.dtype}: {report.backend.name} against the NumPy reference")
        axes.set_xlabel("training step")
        axes.set_ylabel("training loss")
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
