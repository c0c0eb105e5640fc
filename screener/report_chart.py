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
import unicodedata
import warnings
from typing import Any

from screener.i18n import tr
from screener.report import TrialReport

REMAINING_COLOUR = "#4c72b0"
FAILED_COLOUR = "#dd8452"


CJK_FONTS = ["Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "Droid Sans Fallback"]


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
    from matplotlib import font_manager

    # Chinese labels are measured with a CJK font when one is installed (a list of families
    # makes matplotlib fall back glyph by glyph); the page's stylesheet names the fonts the
    # text is drawn in, so without one the chart still reads, only spaced by guess.
    installed = {f.name for f in font_manager.fontManager.ttflist}
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "screener", "font.size": 9,
                                "font.family": ["DejaVu Sans", *(f for f in CJK_FONTS if f in installed)]})
    return matplotlib



def _short(title: str, width: int) -> str:
    """`title` cut to about `width` Latin letters' room, a Chinese character counting two;
    at a word's end where the title has spaces between words."""
    room = [2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in title]
    if sum(room) <= width:
        return title
    shortened = textwrap.shorten(title, width, placeholder="…")
    if sum(room) == len(title) and shortened != "…":
        return shortened
    used, end = 0, 0
    while end < len(title) and used + room[end] <= width - 1:
        used += room[end]
        end += 1
    return title[:end].rstrip() + "…"


def attrition_svg(report: TrialReport, language: str = "en") -> str:
    """An SVG element: per criterion in protocol order, the candidates still not excluded
    after it and those failing it, labelled in `language`. Raises ChartUnavailable without
    matplotlib."""
    _matplotlib()
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    steps = report.steps
    names = [f"{s.criterion} " + _short(s.title, 48) for s in steps]
    height = 1.2 + 0.32 * max(len(steps), 1)
    figure = Figure(figsize=(7.5, height))
    FigureCanvasSVG(figure)
    axes = figure.add_subplot()
    rows = list(range(len(steps)))
    bar = 0.4
    axes.barh([r - bar / 2 for r in rows], [s.remaining for s in steps], height=bar,
              color=REMAINING_COLOUR, label=tr("still not excluded after the criterion").in_language(language))
    axes.barh([r + bar / 2 for r in rows], [s.failed for s in steps], height=bar,
              color=FAILED_COLOUR, label=tr("failing the criterion").in_language(language))
    axes.set_yticks(rows, names)
    axes.invert_yaxis()
    axes.set_xlim(0, max(report.assessed, 1))
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_xlabel(tr("candidates (of {count} screened without error)", count=report.assessed).in_language(language))
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1), ncol=2, frameon=False)
    buffer = io.StringIO()
    with warnings.catch_warnings():  # a glyph no installed font has: the reader's fonts draw it
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        figure.tight_layout()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    # inline in HTML: only the <svg> element, without the XML prolog and doctype
    return svg[svg.index("<svg"):]


