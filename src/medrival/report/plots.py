"""The report's figures as inline SVG strings: forest plot, per-dataset bars, few-shot curves, cost vs metric.

Figures are ``matplotlib.figure.Figure`` objects made directly (never pyplot), so no global figure state leaks
into a caller's session or piles up across calls. Text stays text in the SVG (``svg.fonttype: none``), which
matplotlib XML-escapes; labels come from user data, so every "$" is escaped to stop matplotlib reading
"$...$" as mathtext (a name like "a$b$c" would otherwise be typeset, or fail to parse and raise).
"""
from __future__ import annotations

import io
import math
import re

import matplotlib
import pandas as pd

_SHOTS = re.compile(r"^(\d+)-shot$")
_RC = {"svg.fonttype": "none", "svg.hashsalt": "medrival", "text.usetex": False, "font.size": 9}
# The RDF metadata block names creativecommons/purl URLs: useless inline and a false alarm for "no URLs".
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def label_text(value) -> str:
    """User text made safe for a matplotlib label: "$" escaped so it is never parsed as mathtext."""
    return str(value).replace("$", r"\$")


def _width(base: float, labels) -> float:
    """A figure width that leaves room for the longest label (about 0.07 inch a character at 9 pt), capped."""
    longest = max((len(str(label)) for label in labels), default=0)
    return min(base + 0.07 * longest, 20.0)


def _figure(width: float, height: float):
    matplotlib.use("Agg")  # no display needed; a no-op when Agg (or an interactive backend's canvas) is set
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def to_svg(fig) -> str:
    """``fig`` as an inline ``<svg>`` element: no XML prolog, no DOCTYPE (it names a URL), no metadata block."""
    buffer = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = _METADATA.sub("", text[text.index("<svg"):])
    return text


def forest_plot(table: pd.DataFrame) -> str:
    """Paired differences A - B with CI whiskers, one row per comparison ("dataset: a vs b"), a line at 0; one
    panel per metric (an RQ table with VQA rows mixes e.g. AUROC with closed_accuracy differences)."""
    if table is None or table.empty:
        return ""
    records = table.to_dict("records")
    metrics = list(dict.fromkeys(str(r.get("metric", "metric")) for r in records))  # first-seen order
    panels = [(m, [r for r in records if str(r.get("metric", "metric")) == m][::-1]) for m in metrics]
    labels = [label_text(f"{r['dataset']}: {r['a']} vs {r['b']}") for r in records]
    height = sum(0.9 + 0.35 * len(rows) for _, rows in panels)
    fig = _figure(_width(4.5, labels), height)
    axes = fig.subplots(len(panels), 1, squeeze=False,
                        gridspec_kw={"height_ratios": [0.9 + 0.35 * len(rows) for _, rows in panels]})[:, 0]
    for ax, (metric, rows) in zip(axes, panels):
        _forest_panel(ax, rows, metric)
    return to_svg(fig)


def _forest_panel(ax, rows: list[dict], metric: str) -> None:
    """One metric's comparisons, first on top."""
    for i, r in enumerate(rows):
        diff, low, high = (float(r[k]) for k in ("difference", "low", "high"))
        if not all(math.isfinite(v) for v in (diff, low, high)):
            continue  # an undefined metric (one class only): nothing to draw, the table says n/a
        ax.errorbar(diff, i, xerr=[[diff - low], [high - diff]], fmt="o", color="#1f4e79", capsize=3, ms=4)
    ax.axvline(0.0, color="#888888", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(rows)), labels=[label_text(f"{r['dataset']}: {r['a']} vs {r['b']}") for r in rows])
    ax.set_xlabel(label_text(f"difference in {metric} (A - B), with CI"))
    ax.set_ylim(-0.7, len(rows) - 0.3)


def _arm(frame: pd.DataFrame) -> pd.Series:
    return frame["model"].astype(str) + "+" + frame["method"].astype(str)


def _done(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Finished cells with a value for ``metric`` (empty when the frame has no such column)."""
    if frame is None or frame.empty or metric not in frame.columns:
        return pd.DataFrame()
    status = frame["status"] if "status" in frame.columns else pd.Series("done", index=frame.index)
    return frame[(status.fillna("done") == "done") & frame[metric].notna()]


def dataset_bars(results_frame: pd.DataFrame, metric: str = "auroc", intervals: pd.DataFrame | None = None) -> str:
    """Per dataset, one bar per model+method at its richest label budget (the full training split when it ran;
    else its largest fraction, else its largest K, named in the bar's label); "" when none.

    With ``intervals`` (``medrival.stats.questions.arm_summaries``) the bars are those estimates with their
    bootstrap CIs as error bars, and a VQA dataset gets one group per VQA metric, labelled "dataset (metric)";
    without, the mean over seeds of the stored metric."""
    if intervals is not None and not intervals.empty:
        full = richest_budget(intervals)
        full = full.assign(group=_bar_groups(full, metric))
        means = full.pivot(index="group", columns="arm", values="estimate")
        lows = full.pivot(index="group", columns="arm", values="low")
        highs = full.pivot(index="group", columns="arm", values="high")
        if (full["group"] != full["dataset"]).any():
            metric = f"{metric}; VQA: metric in brackets"
    else:
        done = _done(results_frame, metric)
        if not done.empty and "budget" in done.columns:
            done = done[done["budget"].fillna("full") == "full"]
        if done.empty:
            return ""
        means = done.assign(arm=_arm(done)).groupby(["dataset", "arm"])[metric].mean().unstack("arm")
        lows = highs = None
    if means.empty:
        return ""
    return _bars_svg(means, lows, highs, metric)


def richest_budget(intervals: pd.DataFrame) -> pd.DataFrame:
    """The rows of each (dataset, model, method label) at its richest budget: a few-shot study without a full
    budget still gets its bars (zero-shot at full, the trained arms at their largest budget)."""
    name = "method_label" if "method_label" in intervals.columns else "method"
    from medrival.stats.questions import budget_rank

    rank = intervals["budget"].map(budget_rank)
    best = rank.groupby([intervals["dataset"], intervals["model"], intervals[name]]).transform("max")
    return intervals[rank == best]


def _bar_groups(intervals: pd.DataFrame, metric: str) -> pd.Series:
    """The x group of each arm summary: its dataset, or "dataset (metric)" for a row of another metric (VQA)."""
    if "metric" not in intervals.columns:
        return intervals["dataset"].astype(str)
    other = intervals["metric"].astype(str) != metric
    named = intervals["dataset"].astype(str) + " (" + intervals["metric"].astype(str) + ")"
    return named.where(other, intervals["dataset"].astype(str))


def _PALETTE(index: int):
    from matplotlib import colormaps

    return colormaps["tab20"](index)


def _bars_svg(means: pd.DataFrame, lows, highs, metric: str) -> str:
    fig = _figure(_width(6.0, means.columns), 3.2)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(means.columns))
    for j, arm in enumerate(means.columns):
        xs = [i + (j - (len(means.columns) - 1) / 2) * width for i in range(len(means.index))]
        values = means[arm].fillna(0.0)
        errors = None
        if lows is not None:  # asymmetric CI whiskers; a missing CI draws none
            errors = [(values - lows[arm]).clip(lower=0).fillna(0.0), (highs[arm] - values).clip(lower=0).fillna(0.0)]
        ax.bar(xs, values, width=width, label=label_text(arm), yerr=errors, capsize=1.5,
               error_kw={"elinewidth": 0.6}, color=_PALETTE(j % 20))  # 20 distinct colours before a repeat
    ax.set_xticks(range(len(means.index)), labels=[label_text(d) for d in means.index])
    ax.set_ylabel(label_text(metric) + (" (95% CI)" if lows is not None else ""))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return to_svg(fig)


def _shots(budget) -> float:
    match = _SHOTS.match(str(budget))
    return float(match.group(1)) if match else math.nan


def fewshot_curves(results_frame: pd.DataFrame, metric: str = "auroc") -> str:
    """``metric`` vs K (shots per class), mean over draws, one line per model+method and one panel per dataset.

    Returns "" when the frame has no K-shot budgets.
    """
    done = _done(results_frame, metric)
    if done.empty or "budget" not in done.columns:
        return ""
    done = done.assign(k=done["budget"].map(_shots), arm=_arm(done)).dropna(subset=["k"])
    if done.empty:
        return ""
    datasets = sorted(done["dataset"].astype(str).unique())
    fig = _figure(_width(4.0 * len(datasets), done["arm"].unique()), 3.0)
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets):
        means = done[done["dataset"].astype(str) == dataset].groupby(["arm", "k"])[metric].mean()
        for arm in means.index.get_level_values("arm").unique():
            curve = means.loc[arm].sort_index()
            ax.plot(curve.index, curve.to_numpy(), marker="o", label=label_text(arm))
        ax.set_xscale("log", base=2)
        ax.set_title(label_text(dataset))
        ax.set_xlabel("K (labelled examples per class)")
        ax.set_ylabel(label_text(metric))
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return to_svg(fig)


def cost_plot(results_frame: pd.DataFrame, metric: str = "auroc") -> str:
    """``metric`` vs trainable parameters (log x; 0 drawn at 1), one point per cell, coloured by model+method."""
    done = _done(results_frame, metric)
    if done.empty or "trainable_params" not in done.columns:
        return ""
    params = pd.to_numeric(done["trainable_params"], errors="coerce")
    done = done.assign(arm=_arm(done), x=params.clip(lower=1)).dropna(subset=["x"])
    if done.empty:
        return ""
    fig = _figure(_width(6.0, done["arm"].unique()), 3.2)
    ax = fig.add_subplot()
    for arm, group in done.groupby("arm"):
        ax.scatter(group["x"], group[metric], s=18, label=label_text(arm))
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(label_text(metric))
    if (params == 0).any():
        ax.annotate("0 trainable parameters (zero-shot) drawn at 1", xy=(0.01, 0.02), xycoords="axes fraction",
                    fontsize=7, color="#555555")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return to_svg(fig)


def budget_differences(table: pd.DataFrame) -> str:
    """The paired difference A - B with its CI at every label budget: one panel per opponent, one line per
    dataset and method (and metric), a line at 0 and a dashed one at minus the margin; "" when the table has
    fewer than two budgets. Every point is a paired comparison, so its whisker is the paired CI."""
    if table is None or table.empty or "budget" not in table.columns or table["budget"].nunique() < 2:
        return ""
    from medrival.stats.questions import budget_rank

    budgets = sorted(table["budget"].astype(str).unique(), key=budget_rank)
    where = {budget: i for i, budget in enumerate(budgets)}
    name = "method_label" if "method_label" in table.columns else "method"
    opponents = sorted(table["versus"].astype(str).unique())
    series = table.assign(line=table["dataset"].astype(str) + ": " + table[name].astype(str) + " ["
                          + table["metric"].astype(str) + "]")
    fig = _figure(_width(4.5 * len(opponents), series["line"].unique()), 3.2)
    axes = fig.subplots(1, len(opponents), squeeze=False)[0]
    for ax, opponent in zip(axes, opponents):
        part = series[series["versus"].astype(str) == opponent]
        for line, rows in part.groupby("line", sort=True):
            rows = rows.assign(x=rows["budget"].astype(str).map(where)).sort_values("x")
            y = rows["difference"].to_numpy(dtype=float)
            error = [y - rows["low"].to_numpy(dtype=float), rows["high"].to_numpy(dtype=float) - y]
            ax.errorbar(rows["x"], y, yerr=error, marker="o", capsize=3, label=label_text(line))
        ax.axhline(0.0, color="black", linewidth=0.8)
        if "margin" in part.columns and part["margin"].notna().any():
            ax.axhline(-float(part["margin"].max()), color="grey", linestyle="--", linewidth=0.8)
        ax.set_xticks(range(len(budgets)), [label_text(b) for b in budgets])
        ax.set_title(label_text(f"vs {opponent}"))
        ax.set_xlabel("label budget")
        ax.set_ylabel("A - B (paired CI)")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return to_svg(fig)
