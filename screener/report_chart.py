"""The attrition chart of a trial as inline SVG, drawn by matplotlib (the `report` extra).

matplotlib's own SVG backend draws it, without pyplot (no display, no global state), with
text kept as text (searchable, printable, small) and no date or random ids in the file, so
the same results give the same bytes. matplotlib keeps a font cache in its configuration
folder; when none is set, a temporary one is used and removed, so nothing is written
outside the folders a user named.
"""
from __future__ import annotations

import io
import os
import tempfile
import textwrap
from typing import Any

from screener.report import TrialReport

REMAINING_COLOUR = "#4c72b0"
FAILED_COLOUR = "#dd8452"


class ChartUnavailable(Exception):
    """matplotlib is not installed: `pip install 'screener[report]'`."""


_scratch: tempfile.TemporaryDirectory[str] | None = None  # removed when the process ends


def _matplotlib() -> Any:
    global _scratch
    if "MPLCONFIGDIR" not in os.environ:
        _scratch = tempfile.TemporaryDirectory(prefix="screener-mpl-")
        os.environ["MPLCONFIGDIR"] = _scratch.name
    try:
        import matplotlib
        from matplotlib.backends.backend_svg import FigureCanvasSVG  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as exc:
        raise ChartUnavailable(str(exc)) from None
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "screener",
                                "font.size": 9, "font.family": "sans-serif"})
    return matplotlib



def attrition_svg(report: TrialReport) -> str:
    """An SVG element: per criterion in protocol order, the candidates still not excluded
    after it and those failing it. Raises ChartUnavailable without matplotlib."""
    _matplotlib()
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    steps = report.steps
    names = [f"{s.criterion} " + textwrap.shorten(s.title, 48, placeholder="…") for s in steps]
    height = 1.2 + 0.32 * max(len(steps), 1)
    figure = Figure(figsize=(7.5, height))
    FigureCanvasSVG(figure)
    axes = figure.add_subplot()
    rows = list(range(len(steps)))
    bar = 0.4
    axes.barh([r - bar / 2 for r in rows], [s.remaining for s in steps], height=bar,
              color=REMAINING_COLOUR, label="still not excluded after the criterion")
    axes.barh([r + bar / 2 for r in rows], [s.failed for s in steps], height=bar,
              color=FAILED_COLOUR, label="failing the criterion")
    axes.set_yticks(rows, names)
    axes.invert_yaxis()
    axes.set_xlim(0, max(report.assessed, 1))
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_xlabel(f"candidates (of {report.assessed} screened without error)")
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1), ncol=2, frameon=False)
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    # inline in HTML: only the <svg> element, without the XML prolog and doctype
    return svg[svg.index("<svg"):]


