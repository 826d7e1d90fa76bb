"""What every report figure shares: safe label text, wrapping, figure creation and size caps, SVG/PNG output,
and the colour scheme where a model's role is a hue family and its method a marker or hatch.

Colour-blind safety: generalists are ColorBrewer blues, specialists oranges (the blue/orange pair stays apart
under every common colour-vision deficiency); within a family each model is a shade, and the method is a
marker (points, lines) or hatch (bars), so no figure depends on telling two similar shades apart.
Figures are made directly as ``matplotlib.figure.Figure`` (never pyplot), so no global state leaks.
"""
from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass

import matplotlib
import pandas as pd

_RC = {"svg.fonttype": "none", "svg.hashsalt": "medrival", "text.usetex": False, "font.size": 9,
       "axes.titlesize": 9, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
       "legend.fontsize": 8, "legend.title_fontsize": 8}
# The RDF metadata block names creativecommons/purl URLs: useless inline and a false alarm for "no URLs".
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
MAX_WIDTH, MAX_HEIGHT = 18.0, 40.0  # inches: a huge grid gets smaller panels, never an unbounded file
CHAR_W = 0.062  # inches per character at 8 pt (DejaVu Sans averages a little under 0.6 em)
LINE_H = 0.16  # inches per text line at 8 pt, with leading
_FAMILIES = {"generalist": "Blues", "specialist": "Oranges"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")
HATCHES = ("", "///", "...", "xxx", "\\\\\\", "ooo", "+++", "---", "|||", "//..", "xx..", "o--")
# Okabe-Ito: distinct under the common colour-vision deficiencies; for series that are not model roles.
QUALITATIVE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def label_text(value) -> str:
    """User text made safe for a matplotlib label: "$" escaped so it is never parsed as mathtext."""
    return str(value).replace("$", r"\$")


_STRONG = re.compile(r"[^ +/,]*[ +/,]?")  # break after a space, "+", "/" or "," first
_WEAK = re.compile(r"[^\-_.]*[\-_.]?")  # then inside a name, after "-", "_" or "."


def _tokens(text: str, width: int) -> list[str]:
    """Pieces to fill lines with: split at strong breaks, and a piece still too long at weak breaks."""
    out = []
    for token in (t for t in _STRONG.findall(text) if t):
        out += [token] if len(token) <= width else [t for t in _WEAK.findall(token) if t]
    return out


def wrap(value, width: int = 28) -> str:
    """``value`` broken into lines of at most ``width`` characters (after " + / ," where possible, else after
    "- _ .", else cut), then made safe with ``label_text`` (escaping after wrapping keeps "\\$" together)."""
    text, lines, line = str(value), [], ""
    for token in _tokens(text, width):
        while len(token) > width:  # one unbreakable run longer than a line: cut it
            if line:
                lines.append(line)
                line = ""
            lines.append(token[:width])
            token = token[width:]
        if len(line) + len(token.rstrip()) > width and line:
            lines.append(line)
            line = ""
        line += token
    lines.append(line)
    return "\n".join(label_text(part.rstrip()) for part in lines if part.strip()) or label_text(text)


def text_size(label: str) -> tuple[float, float]:
    """(width, height) in inches of a (wrapped) label at 8 pt: used to size figures before drawing."""
    lines = str(label).split("\n")
    return CHAR_W * max(len(line) for line in lines), LINE_H * len(lines)


def styled(builder):
    """Run a figure builder under the report's rc settings (font sizes are read when text is created), then
    shrink its text if the figure it asked for was over the size cap (``fit_text``)."""
    @functools.wraps(builder)
    def run(*args, **kwargs):
        with matplotlib.rc_context(_RC):
            fig = builder(*args, **kwargs)
        if fig is not None and not isinstance(fig, list):
            fit_text(fig)
        return fig
    return run


MIN_FONT = 3.5  # points: below this the text would be unreadable even zoomed; the cap gives way first


def fit_text(fig) -> None:
    """A figure sized for its labels but capped at MAX_WIDTH x MAX_HEIGHT has less room than its labels need:
    every text shrinks by the same factor, so the layout computed for 8 pt text still fits (vector output
    stays legible when zoomed)."""
    from matplotlib.text import Text

    scale = getattr(fig, "_medrival_text_scale", 1.0)
    if scale >= 1.0:
        return
    for text in fig.findobj(Text):
        text.set_fontsize(max(MIN_FONT, text.get_fontsize() * scale))


def new_figure(width: float, height: float):
    """A constrained-layout Figure of at most MAX_WIDTH x MAX_HEIGHT inches, on an Agg canvas."""
    # An explicit Agg canvas, never matplotlib.use(): a user's interactive backend (a notebook) stays as it is.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(min(width, MAX_WIDTH), min(height, MAX_HEIGHT)), layout="constrained")
    fig._medrival_text_scale = min(1.0, MAX_WIDTH / width, MAX_HEIGHT / height)  # read by fit_text
    FigureCanvasAgg(fig)  # a real canvas, so fig.canvas.draw() lays it out and text extents can be measured
    return fig


def grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    """(rows, columns) of a small-multiples grid of ``n`` panels."""
    cols = max(1, min(n, max_cols))
    return (n + cols - 1) // cols, cols


def to_svg(fig) -> str:
    """``fig`` as an inline ``<svg>`` element: no XML prolog, no DOCTYPE (it names a URL), no metadata block."""
    buffer = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return _METADATA.sub("", text[text.index("<svg"):])


def to_png(fig, dpi: int = 150) -> bytes:
    """``fig`` as PNG bytes (no timestamp metadata, so the same figure gives the same file)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------- roles and styles


def with_roles(frame: pd.DataFrame, results_frame: pd.DataFrame | None) -> pd.DataFrame:
    """``frame`` with a ``role`` column per model taken from ``results_frame`` (the store's results frame has
    one; ``arm_summaries`` has none); "other" where unknown."""
    if frame is None or frame.empty or "role" in frame.columns:
        return frame
    roles = {}
    if results_frame is not None and not results_frame.empty and {"model", "role"} <= set(results_frame.columns):
        roles = dict(results_frame.dropna(subset=["role"]).drop_duplicates("model")[["model", "role"]].values)
    return frame.assign(role=frame["model"].map(lambda model: roles.get(model, "other")))


def role_of(frame: pd.DataFrame) -> pd.Series:
    """The role per row: the ``role`` column where present (missing -> "other")."""
    if "role" not in frame.columns:
        return pd.Series("other", index=frame.index)
    return frame["role"].fillna("other").astype(str)


def role_order(role: str) -> int:
    return {"generalist": 0, "specialist": 1}.get(role, 2)


@dataclass(frozen=True)
class Styles:
    """Colour per model (a shade of its role's family), marker and hatch per method, role per model."""

    colour: dict
    marker: dict
    hatch: dict
    role: dict

    def legend_entries(self, methods_as: str = "marker", methods=None) -> tuple[list, list[str]]:
        """Handles and labels: a heading per role with its models' colours, then the methods (all, or those in
        ``methods``) as markers or hatches."""
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        handles, labels = [], []
        for role in sorted(set(self.role.values()), key=lambda r: (role_order(r), r)):
            handles.append(Line2D([], [], linestyle="none"))
            labels.append(label_text(f"{role}s" if role in _FAMILIES else "models"))
            for model in sorted(m for m, r in self.role.items() if r == role):
                handles.append(Patch(facecolor=self.colour[model], edgecolor="none"))
                labels.append(wrap(model, 30))
        handles.append(Line2D([], [], linestyle="none"))
        labels.append("methods")
        for method in sorted(m for m in self.marker if methods is None or m in methods):
            handles.append(Patch(facecolor="white", edgecolor="#444444", hatch=self.hatch[method])
                           if methods_as == "hatch" else
                           Line2D([], [], color="#444444", marker=self.marker[method], linestyle="none"))
            labels.append(wrap(method, 30))
        return handles, labels


def arm_styles(frame: pd.DataFrame, method_column: str = "method_label") -> Styles:
    """Styles for the models and methods of ``frame`` (columns model, role (optional), the method column)."""
    from matplotlib import colormaps

    roles = dict(zip(frame["model"].astype(str), role_of(frame)))
    colour = {}
    for role in set(roles.values()):
        models = sorted(m for m, r in roles.items() if r == role)
        cmap = colormaps[_FAMILIES.get(role, "Greys")]
        # Dark to mid shades: the lightest end of a sequential map vanishes on white.
        steps = [0.75] if len(models) == 1 else [0.95 - 0.5 * i / (len(models) - 1) for i in range(len(models))]
        colour.update({m: cmap(s) for m, s in zip(models, steps)})
    methods = sorted(frame[method_column].astype(str).unique())
    return Styles(colour, {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(methods)},
                  {m: HATCHES[i % len(HATCHES)] for i, m in enumerate(methods)}, roles)


def outside_legend(fig, handles, labels, title: str | None = None) -> None:
    """One legend to the right of every axes (constrained layout makes room): it never covers data, and
    section headings (entries with an empty handle) are drawn bold."""
    if not handles:
        return
    # The figure grows by the legend's own width (builders size only their panels); a legend taller than
    # the figure would be cut, so the figure grows to it, or past the height cap, the legend takes columns.
    needed = 0.19 * sum(str(label).count("\n") + 1 for label in labels) + 0.4
    columns = 1 if needed <= MAX_HEIGHT else int(needed // MAX_HEIGHT) + 1
    width, height = fig.get_size_inches()
    wanted = width + columns * (max(text_size(label)[0] for label in labels) + 0.7)
    fig._medrival_text_scale = min(getattr(fig, "_medrival_text_scale", 1.0), MAX_WIDTH / wanted)
    fig.set_size_inches(min(MAX_WIDTH, wanted), min(MAX_HEIGHT, max(height, needed / columns)))
    legend = fig.legend(handles, labels, loc="outside right upper", title=title, frameon=False,
                        handlelength=1.4, borderaxespad=0.2, ncols=columns)
    for handle, text in zip(legend.legend_handles, legend.get_texts()):
        if getattr(handle, "get_marker", None) and handle.get_marker() in (None, "None", "none", "") \
                and handle.get_linestyle() in ("None", "none", ""):
            text.set_fontweight("bold")


def arm_name(frame: pd.DataFrame) -> pd.Series:
    """model+method label, as the report's tables name an arm."""
    method = frame["method_label"] if "method_label" in frame.columns else frame["method"]
    return frame["model"].astype(str) + "+" + method.fillna(frame["method"]).astype(str)


def done_rows(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Finished cells with a value for ``metric`` (empty when the frame has no such column)."""
    if frame is None or frame.empty or metric not in frame.columns:
        return pd.DataFrame()
    status = frame["status"] if "status" in frame.columns else pd.Series("done", index=frame.index)
    done = frame[(status.fillna("done") == "done") & frame[metric].notna()]
    if "method_label" not in done.columns:
        done = done.assign(method_label=done["method"])
    return done.assign(method_label=done["method_label"].fillna(done["method"]).astype(str))
