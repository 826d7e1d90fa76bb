"""The report's figures (``medrival.report.plots``): what each draws, that any grid stays readable (no two text
labels overlap, legends outside the axes, sizes capped), colours by role, and that user text is never mathtext.

Real frames come from a small study run once per module; large grids from synthetic frames shaped like them."""
from __future__ import annotations

import itertools

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from medrival.report import plots  # noqa: E402
from medrival.report.plot_style import MAX_HEIGHT, MAX_WIDTH  # noqa: E402

STUDY = """
models: [demo-generalist-clip, demo-specialist-clip]
datasets: [demo-xray, demo-dermoscopy]
methods: [zero_shot, linear_probe]
"""
FEWSHOT = """
models: [demo-generalist-clip, demo-specialist-clip]
datasets: [demo-xray]
methods: [linear_probe]
fewshot: {shots: [2, 8], draws: 2}
"""
RESAMPLES = 100


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Frames and tables of a small real study: two datasets (ID and OOD), zero-shot, linear probe, K-shot."""
    from medrival.stats.questions import arm_summaries, research_questions
    from medrival.store import ResultStore
    from medrival.study.runner import run_study
    from medrival.study.spec import parse_study

    out = tmp_path_factory.mktemp("plots")
    run_study(parse_study(STUDY), out)
    run_study(parse_study(FEWSHOT), out)
    store = ResultStore(out)
    return {"store": store, "frame": store.results_frame(), "arms": arm_summaries(store, n_resamples=RESAMPLES),
            "tables": research_questions(store, n_resamples=RESAMPLES)}


def _real_figures(real) -> dict:
    frame, arms, tables = real["frame"], real["arms"], real["tables"]
    figures = {"bars": plots.dataset_bars(frame, "auroc", arms), "bars-no-ci": plots.dataset_bars(frame, "auroc"),
               "fewshot": plots.fewshot_curves(frame, "auroc"), "cost": plots.cost_plot(frame, "auroc"),
               "reliability": plots.reliability_diagrams(plots.reliability_curves(real["store"]))}
    for key, table in tables.items():
        figures[f"{key}-forest"] = plots.forest_plot(table)
        figures[f"{key}-matrix"] = plots.verdict_matrix(table)
        figures[f"{key}-budgets"] = plots.budget_differences(table)
    for method, fig in plots.metric_heatmaps(plots.with_roles(arms, frame), "auroc"):
        figures[f"heatmap-{method}"] = fig
    return {name: fig for name, fig in figures.items() if fig is not None}


# ------------------------------------------------------------------------------------------ text overlap check


def drawn_texts(fig) -> list:
    """(text, window bbox) of every non-empty Text the Agg canvas actually draws (tick labels outside the view
    are never drawn, so recording at draw time is the only faithful list)."""
    drawn = {}
    original = Text.draw

    def record(self, renderer):
        original(self, renderer)
        if self.get_visible() and self.get_text().strip():
            drawn[id(self)] = self

    Text.draw = record
    try:
        fig.canvas.draw()
    finally:
        Text.draw = original
    renderer = fig.canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(renderer)) for t in drawn.values()]


def overlaps(fig, tolerance: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of drawn texts whose boxes intersect by more than ``tolerance`` pixels both ways."""
    found = []
    for (a, box_a), (b, box_b) in itertools.combinations(drawn_texts(fig), 2):
        width = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        height = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        if width > tolerance and height > tolerance:
            found.append((a, b))
    return found


def outside_figure(fig, tolerance: float = 1.0) -> list[str]:
    """Texts cut off at the figure's edge."""
    fig.canvas.draw()
    w, h = fig.canvas.get_width_height()
    return [text for text, box in drawn_texts(fig)
            if box.x0 < -tolerance or box.y0 < -tolerance or box.x1 > w + tolerance or box.y1 > h + tolerance]


def test_every_figure_of_a_real_study_is_drawn_without_overlapping_or_cut_text(real):
    figures = _real_figures(real)
    # Bars (2), few-shot, cost, reliability, heatmaps (2 methods), and per RQ a forest plot and verdict matrix.
    assert {"bars", "bars-no-ci", "fewshot", "cost", "reliability", "RQ1-matrix", "RQ2-matrix", "RQ3-matrix",
            "RQ2-forest", "RQ2-budgets", "heatmap-linear_probe", "heatmap-zero_shot"} <= set(figures)
    for name, fig in figures.items():
        assert overlaps(fig) == [], name
        assert outside_figure(fig) == [], name


# --------------------------------------------------------------------------------------- large synthetic grids

LONG = "a-rather-long-model-name-from-the-hub-v2"


def _big_frames(n_datasets: int = 7, n_models: int = 3, methods=("zero_shot", "linear_probe", "lora")):
    """A results frame and arm summaries of a large grid with long names (both roles)."""
    rng = np.random.default_rng(0)
    rows, arms = [], []
    models = [(f"{LONG}-{role[:4]}{i}", role) for role in ("generalist", "specialist") for i in range(n_models)]
    for d, (model, role), method in itertools.product(range(n_datasets), models, methods):
        dataset = f"dataset-number-{d}-with-a-long-name"
        trained = method != "zero_shot"
        for budget in (["2-shot", "4-shot", "8-shot", "16-shot", "full"] if trained else ["full"]):
            for draw in range(3 if budget != "full" else 1):
                rows.append({"model": model, "role": role, "dataset": dataset, "method": method,
                             "method_label": method, "budget": budget, "draw": draw, "status": "done",
                             "auroc": rng.uniform(0.5, 1.0), "trainable_params": 1000 * trained})
        value = rng.uniform(0.5, 1.0)
        arms.append({"dataset": dataset, "arm": f"{model}+{method}", "model": model, "method": method,
                     "method_label": method, "budget": "full", "metric": "auroc", "estimate": value,
                     "low": value - 0.05, "high": min(1.0, value + 0.05), "domain": "ID" if d < 3 else "OOD"})
    return pd.DataFrame(rows), pd.DataFrame(arms)


def _big_table(n_datasets: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for d in range(n_datasets):
        for method, budget, versus in itertools.product(("linear_probe", "lora"), ("2-shot", "full"),
                                                        ("off-the-shelf specialist", "adapted specialist")):
            suffix = "" if budget == "full" else f" ({budget})"
            diff = float(rng.normal(0, 0.05))
            rows.append({"dataset": f"dataset-number-{d}-with-a-long-name", "domain": "ID" if d < 3 else "OOD",
                         "a": f"{LONG}-gen0+{method}{suffix}",
                         "b": f"{LONG}-spec0+" + ("zero_shot" if versus.startswith("off") else method + suffix),
                         "method": method, "method_label": method, "versus": versus, "budget": budget,
                         "metric": "auroc", "difference": diff, "low": diff - 0.03, "high": diff + 0.03,
                         "margin": 0.02, "verdict_corrected": "superior" if diff > 0.03 else "inconclusive",
                         "exposed": d == 0})
    return pd.DataFrame(rows)


def test_large_grids_stay_readable_and_capped():
    frame, arms = _big_frames()
    table = _big_table()
    figures = {"bars": plots.dataset_bars(frame, "auroc", arms), "fewshot": plots.fewshot_curves(frame, "auroc"),
               "cost": plots.cost_plot(frame, "auroc"), "forest": plots.forest_plot(table),
               "matrix": plots.verdict_matrix(table), "budgets": plots.budget_differences(table)}
    figures.update({f"heatmap-{m}": fig for m, fig in plots.metric_heatmaps(plots.with_roles(arms, frame),
                                                                             "auroc")})
    for name, fig in figures.items():
        width, height = fig.get_size_inches()
        assert width <= MAX_WIDTH and height <= MAX_HEIGHT, name
        assert overlaps(fig) == [], name
        assert outside_figure(fig) == [], name


# ------------------------------------------------------------------------------------------ what each draws


def _visible_axes(fig, with_data: bool = True) -> list:
    return [ax for ax in fig.axes if ax.get_visible() and (not with_data or ax.get_label() != "<colorbar>")]


def _blue(colour) -> bool:
    r, _, b, _ = to_rgba(colour)
    return b > r


def test_dataset_bars_are_small_multiples_coloured_by_role_with_the_legend_outside():
    frame, arms = _big_frames(n_datasets=4, n_models=2)
    fig = plots.dataset_bars(frame, "auroc", arms)
    axes = _visible_axes(fig)
    assert len(axes) == 4  # one panel per dataset
    ax = axes[0]
    bars = ax.patches
    arms_shown = [t.get_text().replace("\n", "") for t in ax.get_yticklabels()]
    assert len(bars) == len(arms_shown) == 2 * 2 * 3  # 4 models x 3 methods, every arm named on its axis
    at = dict(zip(ax.get_yticks(), arms_shown))
    for bar in bars:  # the bar at a tick is the arm named there
        arm = at[bar.get_y() + bar.get_height() / 2]
        assert _blue(bar.get_facecolor()) == ("-gene" in arm.split("+")[0])
    assert len({bar.get_hatch() for bar in bars}) == 3  # the method as a hatch
    legend = fig.legends[0]
    fig.canvas.draw()
    box = legend.get_window_extent()
    assert all(not box.overlaps(a.get_window_extent()) for a in axes)
    assert "generalists" in [t.get_text() for t in legend.get_texts()]


def test_cost_plot_tells_roles_apart_and_methods_by_marker():
    frame, _ = _big_frames(n_datasets=2, n_models=1)
    fig = plots.cost_plot(frame, "auroc")
    ax = _visible_axes(fig)[0]
    colours = {_blue(c.get_facecolor()[0]) for c in ax.collections}
    assert colours == {True, False}
    assert len({tuple(c.get_paths()[0].vertices.round(3).ravel()) for c in ax.collections}) == 3  # 3 markers
    assert "drawn at 1" in plots.to_svg(fig)
    assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()] and \
        all("^" not in t.get_text() for t in ax.get_xticklabels())  # 1, 10, 1k: never 10^3


def test_fewshot_curves_have_bands_plain_ticks_and_zero_shot_as_a_horizontal_line():
    frame, _ = _big_frames(n_datasets=2, n_models=1)
    fig = plots.fewshot_curves(frame, "auroc")
    axes = _visible_axes(fig)
    assert len(axes) == 2
    ax = axes[0]
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "4", "8", "16"]
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 4  # a band per trained arm
    flat = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(flat) == 2  # the two zero-shot arms
    for line in flat:
        assert len(set(line.get_ydata())) == 1 and list(line.get_xdata()) == [0, 1]  # axhline: all of x
    curves = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert len(curves) == 4 and all(len(line.get_xdata()) == 4 for line in curves)


def test_forest_plot_groups_by_dataset_and_colours_by_verdict():
    table = _big_table(n_datasets=3)
    table = pd.concat([table, table.head(2).assign(metric="closed_accuracy")], ignore_index=True)
    fig = plots.forest_plot(table)
    axes = _visible_axes(fig)
    assert len(axes) == 2  # one panel per metric
    labels = axes[0].get_yticklabels()
    headings = [t.get_text() for t in labels if t.get_fontweight() == "bold"]
    assert len(headings) == 3 and all(h.startswith("dataset-number-") for h in headings)
    rows = [t.get_text() for t in labels if t.get_fontweight() != "bold"]
    assert all("dataset-number" not in row for row in rows)  # the dataset is the heading, not in each label
    colours = {to_rgba(line.get_color()) for line in axes[0].get_lines() if line.get_marker() == "o"}
    assert colours == {to_rgba("#009E73"), to_rgba("#999999")}
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "A superior" in texts and "inconclusive" in texts and any("trained" in t for t in texts)


def _cell_colour(fig, row: int, column: int):
    image = next(a for a in fig.axes[0].get_images() if isinstance(a, AxesImage))
    value = image.get_array()[row, column]
    return image.cmap(image.norm(value))


def test_verdict_matrix_colours_follow_the_oriented_difference_and_marks_exposure():
    rows = [{"dataset": "id-set", "domain": "ID", "a": "g+lora", "b": "s+zero_shot", "method_label": "lora",
             "versus": "off-the-shelf specialist", "budget": "full", "metric": "auroc", "difference": 0.1,
             "low": 0.05, "high": 0.15, "verdict_corrected": "superior", "exposed": False},
            {"dataset": "ood-set", "domain": "OOD", "a": "g+lora", "b": "s+zero_shot", "method_label": "lora",
             "versus": "off-the-shelf specialist", "budget": "full", "metric": "auroc", "difference": -0.2,
             "low": -0.25, "high": -0.15, "verdict_corrected": "inferior", "exposed": True}]
    fig = plots.verdict_matrix(pd.DataFrame(rows))
    assert _blue(_cell_colour(fig, 0, 0)) and not _blue(_cell_colour(fig, 0, 1))
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "superior\n+0.100" in texts and "inferior*\n-0.200" in texts
    assert [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch()]  # the exposed cell, hatched
    fig.canvas.draw()
    top = ax.child_axes[0]  # the secondary x axis on top
    assert [t.get_text() for t in top.get_xticklabels()] == ["ID", "OOD"]  # the column groups
    assert any("exposed" in t.get_text() for t in fig.legends[0].get_texts())
    # Brier: lower wins, so a negative difference is A better and blue.
    brier = pd.DataFrame(rows).assign(metric="brier")
    assert _blue(_cell_colour(plots.verdict_matrix(brier), 0, 1))


def test_metric_heatmaps_one_per_method_with_annotated_values():
    _, arms = _big_frames(n_datasets=3, n_models=1)
    figures = plots.metric_heatmaps(arms, "auroc")
    assert [name for name, _ in figures] == ["linear_probe", "lora", "zero_shot"]
    name, fig = figures[1]
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == 2 and len(ax.get_xticklabels()) == 3  # models x datasets
    expected = arms[arms["method"] == "lora"]["estimate"].round(2)
    assert sorted(float(t.get_text()) for t in ax.texts) == sorted(expected)
    assert plots.metric_heatmaps(arms, "accuracy") == [] and plots.metric_heatmaps(arms.iloc[:0], "auroc") == []


def test_reliability_diagrams_one_panel_per_arm(real):
    curves = plots.reliability_curves(real["store"])
    classification = real["arms"][real["arms"]["task"].isin(["binary", "multiclass"])]
    assert set(zip(curves["dataset"], curves["arm"])) == set(zip(classification["dataset"], classification["arm"]))
    assert curves.groupby(["dataset", "arm"]).size().eq(15).all()  # 15 equal-width bins each
    fig = plots.reliability_diagrams(curves)
    axes = _visible_axes(fig)
    assert len(axes) == len(classification)
    diagonal = [line for line in axes[0].get_lines() if list(line.get_xdata()) == [0, 1]]
    assert diagonal and list(diagonal[0].get_ydata()) == [0, 1]
    one = {key: ids for key, ids in plots.arm_cells(real["store"]).items() if key[0] == "demo-xray"}
    assert set(plots.reliability_curves(real["store"], one)["dataset"]) == {"demo-xray"}
    assert plots.reliability_diagrams(curves.iloc[:0]) is None


def test_nothing_to_draw_gives_none():
    frame = pd.DataFrame({"model": ["m"], "role": ["generalist"], "method": ["zero_shot"], "dataset": ["d"],
                          "status": ["done"], "budget": ["full"], "auroc": [0.8], "trainable_params": [0]})
    assert plots.fewshot_curves(frame, "auroc") is None  # no K-shot budgets
    assert plots.dataset_bars(frame.iloc[:0]) is None and plots.cost_plot(frame.iloc[:0], "auroc") is None
    assert plots.forest_plot(pd.DataFrame()) is None and plots.verdict_matrix(pd.DataFrame()) is None
    assert plots.budget_differences(_big_table().assign(budget="full")) is None  # one budget
    assert "drawn at 1" in plots.to_svg(plots.cost_plot(frame, "auroc"))


def test_dollar_signs_in_names_are_not_mathtext():
    frame = pd.DataFrame({"model": ["m$x$"], "method": ["a$^$b"], "dataset": ["d$1"], "status": ["done"],
                          "budget": ["full"], "auroc": [0.8], "trainable_params": [0]})
    svg = plots.to_svg(plots.dataset_bars(frame))
    assert "m$x$+a$^$b" in svg and "d$1" in svg
    table = _big_table(1).assign(a="g$x$+lora", dataset="d$^$1")
    svg = plots.to_svg(plots.verdict_matrix(table)) + plots.to_svg(plots.forest_plot(table))
    assert "g$x$+lora" in svg and "d$^$1" in svg
    arms = pd.DataFrame({"dataset": ["d$1"], "model": ["m$x$"], "method": ["a$b$"], "budget": ["full"],
                         "metric": ["auroc"], "estimate": [0.7]})
    assert "m$x$" in plots.to_svg(plots.metric_heatmaps(arms, "auroc")[0][1])


def test_svg_and_png_output():
    frame, arms = _big_frames(n_datasets=1, n_models=1)
    fig = plots.dataset_bars(frame, "auroc", arms)
    svg, png = plots.to_svg(fig), plots.to_png(fig)
    assert svg.startswith("<svg") and "<metadata>" not in svg and "<!DOCTYPE" not in svg
    assert png.startswith(b"\x89PNG") and png == plots.to_png(fig)  # no timestamp: the same bytes twice
