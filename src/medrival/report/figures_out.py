"""The report's figures: inlined (as checked SVG) in the page and written to ``figures/`` beside it.

Every figure gets a stable file name from the report's own vocabulary (``rq1-verdict-matrix``,
``heatmap-<method>``, ``dataset-bars``, ...), slugified so a hostile method name can neither leave the folder
nor collide with another figure. A figure that fails the SVG check is left out of the page with a visible note
instead of failing the whole report: the report of a finished study must always be written.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from medrival.report.svg_safety import UnsafeSvgError, safe_svg

FIGURES_DIR = "figures"
_SLUG_MAX = 60


def slug(text: str) -> str:
    """A file-name-safe form of ``text``: lowercase ASCII letters, digits and single dashes, at most 60 chars
    (so no "/", ".." or hidden file); a short hash of the text when nothing of it is left."""
    base = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:_SLUG_MAX].strip("-")
    return base or "figure-" + hashlib.sha1(str(text).encode("utf-8")).hexdigest()[:8]


@dataclass
class ShownFigure:
    """One figure: its file stem, the SVG text that is inlined, and the PNG bytes (None for an SVG string)."""

    name: str
    svg: str
    png: bytes | None = None
    note: str = ""  # why the figure is not shown, when it failed the check


def _as_svg_and_png(figure) -> tuple[str, bytes | None]:
    """(SVG text, PNG bytes) of a matplotlib Figure; (the text, None) for SVG made elsewhere (it is checked all
    the same); ("", None) for no figure."""
    from medrival.report import plots

    if figure is None or isinstance(figure, str):
        return figure or "", None
    svg = plots.to_svg(figure)
    try:  # the PNG keeps the SVG's layout: laying out a many-panel figure again costs seconds per report
        figure.set_layout_engine("none")
    except RuntimeError:  # an engine that cannot be swapped here: lay it out again
        pass
    return svg, plots.to_png(figure)


@dataclass
class FigureSet:
    """The figures of one report, in page order."""

    figures: list[ShownFigure] = field(default_factory=list)

    def add(self, name: str, figure) -> ShownFigure | None:
        """Check and keep a figure (a matplotlib Figure, or SVG text); None when there is nothing to draw."""
        svg, png = _as_svg_and_png(figure)
        if not svg:
            return None
        stem = self._unique(name)
        try:
            shown = ShownFigure(stem, safe_svg(svg), png)
        except UnsafeSvgError as error:
            shown = ShownFigure(stem, "", None, f"Figure {stem} left out: {error}. This is a bug: please report it.")
        self.figures.append(shown)
        return shown

    def _unique(self, name: str) -> str:
        # Two names with one slug ("linear_probe", "linear-probe") get -2, -3 in page order: stable per study.
        base = stem = slug(name)
        taken, number = {f.name for f in self.figures}, 2
        while stem in taken:
            stem, number = f"{base}-{number}", number + 1
        return stem

    def write(self, folder: Path) -> list[Path]:
        """Every shown figure as ``<name>.svg`` (and ``<name>.png`` when drawn from a Figure) in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for figure in self.figures:
            if not figure.svg:
                continue
            svg = folder / f"{figure.name}.svg"
            svg.write_text('<?xml version="1.0" encoding="utf-8"?>\n' + figure.svg + "\n", encoding="utf-8")
            written.append(svg)
            if figure.png is not None:
                png = folder / f"{figure.name}.png"
                png.write_bytes(figure.png)
                written.append(png)
        return written


def figure_block(figures: FigureSet, name: str, figure) -> dict | None:
    """Template data of one figure: {"name", "svg", "note"}, or None when there is nothing to draw."""
    shown = figures.add(name, figure)
    return None if shown is None else {"name": shown.name, "svg": shown.svg, "note": shown.note}
