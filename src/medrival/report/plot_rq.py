"""Figures of one research-question table: the forest plot (every paired difference with its CI, grouped by
dataset, coloured by corrected verdict) and the paired differences across label budgets."""
from __future__ import annotations

import math

import pandas as pd

from medrival.report.plot_style import (
    LINE_H,
    MARKERS,
    QUALITATIVE,
    grid,
    label_text,
    new_figure,
    outside_legend,
    styled,
    text_size,
    wrap,
)

# Okabe-Ito colours by what the corrected verdict claims about A; grey claims nothing.
VERDICT_COLOURS = {"superior": "#009E73", "non-inferior": "#56B4E9", "inconclusive": "#999999",
                   "inferior": "#D55E00"}
VERDICT_WORDS = {"superior": "A superior", "non-inferior": "A non-inferior", "inconclusive": "inconclusive",
                 "inferior": "A inferior"}
DOMAIN_ORDER = {"ID": 0, "mixed": 1, "OOD": 2}


def verdict_of(row: dict) -> str:
    """The corrected verdict where the table has one (the family-wise claim), else the per-row one."""
    value = row.get("verdict_corrected", row.get("verdict"))
    return str(value) if value is not None and value == value else "inconclusive"


def dataset_order(table: pd.DataFrame) -> list[str]:
    """Datasets ID first, then mixed, then OOD; by name within."""
    domain = table.get("domain", pd.Series("", index=table.index)).astype(str)
    pairs = dict(zip(table["dataset"].astype(str), domain))
    return sorted(pairs, key=lambda d: (DOMAIN_ORDER.get(pairs[d], 3), d))


def comparison_label(row: dict, width: int = 34) -> str:
    """"A vs B" on two wrapped lines; "*" marks a comparison on data a model was trained on."""
    star = " *" if bool(row.get("exposed")) else ""
    return wrap(str(row["a"]), width) + "\n" + wrap(f"vs {row['b']}{star}", width)


def _split_arm(label: str) -> tuple[str, str] | None:
    """(model, "method (budget)") of an arm label "model+method (budget)"; None without a "+"."""
    model, plus, method = str(label).rpartition("+")
    return (model, method) if plus and model else None


def _short_labels(rows: list[dict]) -> tuple[str, list[str]] | None:
    """When every comparison of a dataset pits the same two models: (" model A vs model B" for the heading,
    ["method vs method" per row]); None when the models differ (then each row names its own)."""
    parts = [(_split_arm(r["a"]), _split_arm(r["b"])) for r in rows]
    if any(a is None or b is None for a, b in parts) or len({(a[0], b[0]) for a, b in parts}) != 1:
        return None
    (model_a, _), (model_b, _) = parts[0]
    star = [" *" if bool(r.get("exposed")) else "" for r in rows]
    return f": {model_a} vs {model_b}", [wrap(f"{a[1]} vs {b[1]}{s}", 34) for (a, b), s in zip(parts, star)]


def _forest_rows(records: list[dict]) -> list[tuple[str, dict | None]]:
    """(tick label, row or None for a dataset heading) top to bottom: a heading per dataset (naming the two
    models when all its rows share them), then its comparisons."""
    frame = pd.DataFrame(records)
    out = []
    for dataset in dataset_order(frame):
        rows = [r for r in records if str(r["dataset"]) == dataset]
        domain = str(rows[0].get("domain", "") or "")
        short = _short_labels(rows)
        models = short[0] if short else ""
        out.append((wrap(dataset + (f" ({domain})" if domain else "") + models, 34), None))
        out += list(zip(short[1], rows)) if short else [(comparison_label(r), r) for r in rows]
    return out


@styled
def forest_plot(table: pd.DataFrame):
    """Paired differences A - B with CI whiskers and a line at 0; rows grouped under a bold heading per dataset
    (ID first), points coloured by the corrected verdict; one panel per metric (an RQ table with VQA rows mixes
    e.g. AUROC with closed_accuracy differences). None for an empty table."""
    if table is None or table.empty:
        return None
    records = table.to_dict("records")
    metrics = list(dict.fromkeys(str(r.get("metric", "metric")) for r in records))  # first-seen order
    panels = [(m, _forest_rows([r for r in records if str(r.get("metric", "metric")) == m])) for m in metrics]
    label_w = max(text_size(label)[0] for _, rows in panels for label, _ in rows)
    heights = [_units(rows) * LINE_H + 0.9 for _, rows in panels]
    fig = new_figure(label_w + 4.0, sum(heights) + 0.2)
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, (metric, rows) in zip(axes, panels):
        _forest_panel(ax, rows, metric)
    outside_legend(fig, *_verdict_legend(table))
    return fig


def _units(rows: list[tuple[str, dict | None]]) -> float:
    return sum(label.count("\n") + 1.5 for label, _ in rows)


def _forest_panel(ax, rows: list[tuple[str, dict | None]], metric: str) -> None:
    """One metric's comparisons, top to bottom; a y position per row spaced by its label's lines."""
    ys, y = [], _units(rows)
    for label, _ in rows:
        step = label.count("\n") + 1.5
        ys.append(y - step / 2)
        y -= step
    for y, (label, row) in zip(ys, rows):
        if row is None:
            ax.axhline(y, color="#cccccc", linewidth=0.6)  # the dataset's separator, behind its heading
            continue
        diff, low, high = (float(row[k]) for k in ("difference", "low", "high"))
        if not all(math.isfinite(v) for v in (diff, low, high)):
            continue  # an undefined metric (one class only): nothing to draw, the table says n/a
        ax.errorbar(diff, y, xerr=[[diff - low], [high - diff]], fmt="o", capsize=3, ms=5,
                    color=VERDICT_COLOURS.get(verdict_of(row), "#999999"))
    ax.axvline(0.0, color="#555555", linestyle="--", linewidth=0.8)
    ax.set_yticks(ys, labels=[label for label, _ in rows])
    for tick, (_, row) in zip(ax.get_yticklabels(), rows):
        tick.set_fontweight("bold" if row is None else "normal")
    ax.set_ylim(0, _units(rows))
    ax.set_xlabel(label_text(f"difference in {metric} (A - B), with CI"))


def _verdict_legend(table: pd.DataFrame) -> tuple[list, list[str]]:
    from matplotlib.lines import Line2D

    present = {verdict_of(r) for r in table.to_dict("records")}
    handles = [Line2D([], [], linestyle="none")]
    labels = ["corrected verdict"]
    for verdict, colour in VERDICT_COLOURS.items():
        if verdict in present:
            handles.append(Line2D([], [], color=colour, marker="o", linestyle="none"))
            labels.append(VERDICT_WORDS[verdict])
    if "exposed" in table.columns and table["exposed"].fillna(False).astype(bool).any():
        handles.append(Line2D([], [], linestyle="none"))
        labels.append("* a model was trained\n   on this dataset")
    return handles, labels


@styled
def budget_differences(table: pd.DataFrame):
    """The paired difference A - B with its CI at every label budget: one panel per opponent, one line per
    dataset and method (and metric), a line at 0 and a dashed one at minus the margin; None when the table has
    fewer than two budgets. Colour: the dataset; marker: the method. Every whisker is the paired CI."""
    if table is None or table.empty or "budget" not in table.columns or table["budget"].nunique() < 2:
        return None
    from medrival.stats.questions import budget_rank

    budgets = sorted(table["budget"].astype(str).unique(), key=budget_rank)
    name = "method_label" if "method_label" in table.columns else "method"
    opponents = sorted(table["versus"].astype(str).unique())
    datasets = dataset_order(table)
    methods = sorted(table[name].astype(str).unique())
    metrics = sorted(table["metric"].astype(str).unique())
    series = table.assign(_d=table["dataset"].astype(str), _m=table[name].astype(str),
                          _metric=table["metric"].astype(str))
    n_rows, n_cols = grid(len(opponents), 2)
    fig = new_figure(n_cols * (0.9 * len(budgets) + 2.6) + 0.3, n_rows * 2.8 + 0.3)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    lines = list(series.groupby(["_d", "_m", "_metric"]).groups)
    for ax, opponent in zip(axes.flat, opponents):
        part = series[series["versus"].astype(str) == opponent]
        for i, key in enumerate(lines):
            rows = part[(part["_d"] == key[0]) & (part["_m"] == key[1]) & (part["_metric"] == key[2])]
            if rows.empty:
                continue
            # A small sideways offset per line keeps the whiskers of one budget apart.
            x = rows["budget"].astype(str).map(budgets.index) + (i - (len(lines) - 1) / 2) * 0.25 / len(lines)
            order = x.argsort()
            y = rows["difference"].to_numpy(dtype=float)[order]
            error = [y - rows["low"].to_numpy(dtype=float)[order], rows["high"].to_numpy(dtype=float)[order] - y]
            ax.errorbar(x.to_numpy()[order], y, yerr=error, capsize=2, ms=4, linewidth=1,
                        color=QUALITATIVE[datasets.index(key[0]) % len(QUALITATIVE)],
                        marker=MARKERS[methods.index(key[1]) % len(MARKERS)],
                        linestyle=("-", "--", ":", "-.")[metrics.index(key[2]) % 4])
        ax.axhline(0.0, color="black", linewidth=0.8)
        if "margin" in part.columns and part["margin"].notna().any():
            ax.axhline(-float(part["margin"].max()), color="grey", linestyle="--", linewidth=0.8)
        ax.set_xticks(range(len(budgets)), [label_text(b) for b in budgets])
        ax.set_title(wrap(f"vs {opponent}", 40))
        ax.set_xlabel("label budget")
        ax.set_ylabel("A - B (paired CI)")
    for ax in list(axes.flat)[len(opponents):]:
        ax.set_visible(False)
    outside_legend(fig, *_series_legend(datasets, methods, metrics, table))
    return fig


def _series_legend(datasets, methods, metrics, table) -> tuple[list, list[str]]:
    from matplotlib.lines import Line2D

    blank = Line2D([], [], linestyle="none")
    handles, labels = [blank], ["datasets"]
    for i, dataset in enumerate(datasets):
        handles.append(Line2D([], [], color=QUALITATIVE[i % len(QUALITATIVE)], linewidth=2))
        labels.append(wrap(dataset, 30))
    handles.append(blank)
    labels.append("methods")
    for i, method in enumerate(methods):
        handles.append(Line2D([], [], color="#444444", marker=MARKERS[i % len(MARKERS)], linestyle="none"))
        labels.append(wrap(method, 30))
    if len(metrics) > 1:
        handles.append(blank)
        labels.append("metrics")
        for i, metric in enumerate(metrics):
            handles.append(Line2D([], [], color="#444444", linestyle=("-", "--", ":", "-.")[i % 4]))
            labels.append(wrap(metric, 30))
    if "margin" in table.columns and table["margin"].notna().any():
        handles.append(Line2D([], [], color="grey", linestyle="--"))
        labels.append("minus the margin")
    return handles, labels
