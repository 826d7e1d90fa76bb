"""The report's figures, one import for the report page: every function returns a ``matplotlib.figure.Figure``
(None when there is nothing to draw; ``metric_heatmaps`` a list of (method, Figure)), and ``to_svg`` /
``to_png`` turn one into an inline ``<svg>`` element or PNG bytes.

The figures live in small modules by subject (``plot_style`` shared rules, ``plot_rq`` forest and budget
plots, ``plot_verdicts`` the verdict matrix, ``plot_arms`` bars and cost, ``plot_fewshot``, ``plot_heatmaps``,
``plot_calibration``). Text stays text in the SVG (``svg.fonttype: none``), which matplotlib XML-escapes;
labels come from user data, so every label goes through ``label_text`` (directly or via ``wrap``), which
escapes "$" so "$...$" is never read as mathtext (a name like "a$b$c" would otherwise be typeset, or fail to
parse and raise).
"""
from __future__ import annotations

from medrival.report.plot_arms import cost_plot, dataset_bars, richest_budget
from medrival.report.plot_calibration import arm_cells, reliability_curves, reliability_diagrams
from medrival.report.plot_fewshot import fewshot_curves
from medrival.report.plot_heatmaps import metric_heatmaps
from medrival.report.plot_rq import budget_differences, forest_plot
from medrival.report.plot_style import label_text, to_png, to_svg, with_roles, wrap
from medrival.report.plot_verdicts import verdict_matrix

__all__ = ["arm_cells", "budget_differences", "cost_plot", "dataset_bars", "fewshot_curves", "forest_plot",
           "label_text", "metric_heatmaps", "reliability_curves", "reliability_diagrams", "richest_budget",
           "to_png", "to_svg", "verdict_matrix", "with_roles", "wrap"]
