"""Per-subgroup metrics with bootstrap confidence intervals, and the worst-group gap.

``subgroup_metrics`` evaluates one metric on every value of every attribute (sex, age band, race, site, ...):
the subgroup's size ``n``, the metric on its rows, and a bootstrap CI (``medrival.stats.bootstrap.bootstrap_ci``
on those rows only, with the cluster ids of those rows, so patients stay whole within a subgroup). Two flags
keep small or degenerate groups visible instead of silently dropping them:

* ``too_small``: ``n < min_size``; the estimate is still reported, but it is excluded from the worst-group gap.
* ``undefined``: the metric is NaN on the subgroup (e.g. AUROC with one class only); the reason is in ``note``.

``worst_group_gap`` then reports, per attribute, the best and the worst eligible (not too small, defined) group
and the gap between them, the usual worst-group summary of subgroup-robustness work (Sagawa et al., ICLR 2020,
"Distributionally Robust Neural Networks"; Seyyed-Kalantari et al., Nature Medicine 2021, on under-diagnosis
gaps in chest X-ray classifiers).

Group labels: every value is written as ``str(value)``; missing values (None, NaN, pandas NA/NaT) form one group
labelled ``"missing"``. Strings such as ``"unknown"`` or ``"declined"`` are kept as written, as their own group:
a dataset's explicit "unknown" can differ from an absent value, so they are not merged. ``age_bands`` turns ages
into half-open bands.

Named metrics (those ``medrival.stats.weighted.METRIC_NAMES`` bootstraps: auroc, accuracy, balanced_accuracy,
macro_f1, brier) are computed by their registered aggregate (``medrival.metrics.registry``), as
``medrival.metrics.compute_classification_metrics``: predictions are the argmax of the probabilities (a 1-D
binary score ``p`` is read as ``[1 - p, p]``), multilabel predictions are ``p >= 0.5``. A callable metric
``f(y_true, y_score) -> float`` is used as given.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from medrival.core.errors import DataError, MedrivalError
from medrival.core.types import TaskKind
from medrival.metrics.classification import _check_finite_numeric, _check_integer_labels
from medrival.metrics.registry import metric_spec
from medrival.stats.calibration import _check_task
# One metric vocabulary with the bootstrap (names, prediction rule, which metrics are better when smaller).
from medrival.stats.weighted import LOWER_IS_BETTER, check_metric_name

MISSING = "missing"

MetricFn = Callable[[np.ndarray, np.ndarray], float]


# ------------------------------------------------------------------------------------------------ metrics


def _named_metric(name: str, kind: TaskKind) -> MetricFn:
    """The registered aggregate of a metric name (``medrival.metrics.registry``) for this task: the very function
    ``compute_classification_metrics`` and the arm summaries use."""
    aggregate = metric_spec(name).aggregate
    return lambda y, s: aggregate(y, s, task=kind)


def _resolve_metric(metric: str | MetricFn, kind: TaskKind) -> tuple[str, MetricFn]:
    if callable(metric):
        return getattr(metric, "__name__", "metric"), metric
    return check_metric_name(metric), _named_metric(metric, kind)


def _evaluate(fn: MetricFn, y: np.ndarray, s: np.ndarray) -> tuple[float, str]:
    """The metric and the text of any warning it raised (kept as the reason when the value is NaN)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(fn(y, s))
    return value, " ".join(str(w.message) for w in caught)


# ------------------------------------------------------------------------------------------------ groups


def group_labels(values, name: str = "values") -> np.ndarray:
    """``str(value)`` per item, ``"missing"`` for None/NaN/NA (see the module docstring)."""
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise DataError(f"{name} must be a 1-D sequence with one value per item, got shape {arr.shape}.")
    missing = pd.isna(arr).astype(bool)
    return np.array([MISSING if m else str(v) for v, m in zip(arr, missing)], dtype=object)


def _ordered(labels: np.ndarray) -> list[str]:
    """Sorted group labels with "missing" last, so tables read the same from run to run."""
    present = set(labels.tolist())
    return sorted(present - {MISSING}) + ([MISSING] if MISSING in present else [])


def _check_groups(groups: Mapping[str, object], n: int) -> dict[str, np.ndarray]:
    if not isinstance(groups, Mapping) or not groups:
        raise DataError(f"groups must be a non-empty dict attribute -> values (one per item), got {groups!r}; "
                        f"e.g. groups={{'sex': sex, 'age_band': age_bands(age)}}.")
    out = {}
    for attr, values in groups.items():
        labels = group_labels(values, f"groups[{attr!r}]")
        if labels.size != n:
            raise DataError(f"groups[{attr!r}] has {labels.size} values but there are {n} items; pass one value "
                            f"per row of y_true, in the same order.")
        out[str(attr)] = labels
    return out


def _check_inputs(y_true, y_score, clusters, task, min_size):
    y = _check_integer_labels(y_true, "y_true")
    s = _check_finite_numeric(y_score, "y_score").astype(np.float64)
    kind = _check_task(task, y, s)
    if y.shape[0] != s.shape[0]:
        raise DataError(f"y_true has {y.shape[0]} rows but y_score has {s.shape[0]}; they must describe the "
                        f"same examples in the same order.")
    if clusters is not None:
        clusters = np.asarray(clusters)
        if clusters.shape != (y.shape[0],):
            raise DataError(f"clusters has shape {clusters.shape}, expected ({y.shape[0]},): one cluster id "
                            f"(e.g. patient id) per item.")
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 1:
        raise DataError(f"min_size must be a positive integer, got {min_size!r}.")
    return y, s, clusters, kind


# ------------------------------------------------------------------------------------------------ tables


def _interval(metric, y, s, clusters, kind, n_resamples, level, seed) -> tuple[float, float, str]:
    """Bootstrap (low, high, note); no CI (NaN) when ``n_resamples`` is 0."""
    if n_resamples == 0:
        return math.nan, math.nan, ""
    from medrival.stats.bootstrap import bootstrap_ci  # lazy: only needed when CIs are asked for

    try:
        ci = bootstrap_ci(metric, y, s, clusters=clusters, n_resamples=n_resamples, level=level, seed=seed,
                          task=kind.value)
    except MedrivalError as err:  # e.g. a 2-item group; keep the row, say why the CI is missing
        return math.nan, math.nan, f"no CI: {err}"
    return ci.low, ci.high, ""


def subgroup_metrics(metric: str | MetricFn, y_true, y_score, groups: Mapping[str, object], *,
                     clusters=None, n_resamples: int = 2000, level: float = 0.95, seed: int = 0,
                     min_size: int = 20, task: TaskKind | str | None = None,
                     higher_is_better: bool | None = None) -> pd.DataFrame:
    """One row per (attribute, group): ``attribute, group, n, metric, estimate, low, high, level, too_small,
    undefined, note, overall, higher_is_better``.

    ``estimate`` is the metric on the group's rows, ``low``/``high`` its bootstrap CI (percentile bootstrap with
    the same ``seed`` for every group; ``n_resamples=0`` skips the CI), ``overall`` the metric on all rows.
    ``higher_is_better`` defaults to False for Brier/ECE-like names and True otherwise. Rows follow the
    attributes in the order given, then the group labels in string order with ``"missing"`` last.
    """
    y, s, clusters, kind = _check_inputs(y_true, y_score, clusters, task, min_size)
    labelled = _check_groups(groups, y.shape[0])
    name, fn = _resolve_metric(metric, kind)
    overall, _ = _evaluate(fn, y, s)
    better_up = name not in LOWER_IS_BETTER if higher_is_better is None else bool(higher_is_better)
    rows = []
    for attr, labels in labelled.items():
        for group in _ordered(labels):
            mask = labels == group
            n = int(mask.sum())
            estimate, why = _evaluate(fn, y[mask], s[mask])
            notes = [f"n={n} < min_size={min_size}"] if n < min_size else []
            low = high = math.nan
            if math.isnan(estimate):
                notes.append(f"undefined: {why or 'the metric returned NaN'}")
            else:
                low, high, ci_note = _interval(metric, y[mask], s[mask], None if clusters is None else
                                               clusters[mask], kind, n_resamples, level, seed)
                notes += [ci_note] if ci_note else []
            rows.append({"attribute": attr, "group": group, "n": n, "metric": name, "estimate": estimate,
                         "low": low, "high": high, "level": level, "too_small": n < min_size,
                         "undefined": math.isnan(estimate), "note": "; ".join(notes), "overall": overall,
                         "higher_is_better": better_up})
    return pd.DataFrame(rows)


def worst_group_gap(table: pd.DataFrame) -> pd.DataFrame:
    """Per attribute: ``attribute, metric, best_group, best, worst_group, worst, gap, overall, n_groups,
    n_excluded, note`` from a ``subgroup_metrics`` table.

    Only groups that are neither ``too_small`` nor ``undefined`` take part (``n_groups``; the rest are counted
    in ``n_excluded``). "Best" follows ``higher_is_better``; ``gap = |best - worst|`` (best − worst for a
    higher-is-better metric, worst − best for Brier-like ones), so it is always >= 0. With fewer than two eligible
    groups the gap is NaN and ``note`` says so. Ties go to the group listed first.
    """
    needed = {"attribute", "group", "metric", "estimate", "too_small", "undefined", "overall", "higher_is_better"}
    if not isinstance(table, pd.DataFrame) or not needed <= set(table.columns):
        got = sorted(table.columns) if isinstance(table, pd.DataFrame) else type(table).__name__
        raise DataError(f"worst_group_gap expects the table from subgroup_metrics (columns {sorted(needed)}), "
                        f"got {got}.")
    rows = []
    for attr, part in table.groupby("attribute", sort=False):
        ok = part[~part["too_small"].astype(bool) & ~part["undefined"].astype(bool)]
        row = {"attribute": attr, "metric": part["metric"].iloc[0], "best_group": None, "best": math.nan,
               "worst_group": None, "worst": math.nan, "gap": math.nan, "overall": float(part["overall"].iloc[0]),
               "n_groups": len(ok), "n_excluded": len(part) - len(ok), "note": ""}
        if len(ok):
            up = bool(part["higher_is_better"].iloc[0])
            values = ok["estimate"].to_numpy(dtype=np.float64)
            best, worst = (values.argmax(), values.argmin()) if up else (values.argmin(), values.argmax())
            row.update(best_group=ok["group"].iloc[best], best=float(values[best]),
                       worst_group=ok["group"].iloc[worst], worst=float(values[worst]))
        if len(ok) >= 2:
            row["gap"] = abs(row["best"] - row["worst"])
        else:
            row["note"] = f"{len(ok)} eligible group(s) (not too small, defined); a gap needs at least 2."
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ age bands


def _band_label(lo: float, hi: float) -> str:
    fmt = lambda x: f"{int(x)}" if float(x).is_integer() else f"{x:g}"  # noqa: E731
    if math.isinf(hi):
        return f"{fmt(lo)}+"
    if float(lo).is_integer() and float(hi).is_integer():
        return f"{fmt(lo)}-{fmt(hi - 1)}"  # whole years: [18, 40) is "18-39"
    return f"{fmt(lo)}-<{fmt(hi)}"


def age_bands(ages, edges: Sequence[float] = (0, 18, 40, 60, 80, math.inf)) -> np.ndarray:
    """Age band label per item, half-open ``[edges[i], edges[i+1])``.

    With the default edges: ``"0-17", "18-39", "40-59", "60-79", "80+"`` (an age of 17.9 is "0-17", 18 is
    "18-39"); ``"missing"`` for None/NaN. Integer edges give "lo-(hi-1)" labels, other edges "lo-<hi", an infinite
    last edge "lo+". Ages below the first edge or at/above a finite last edge raise ``DataError``.
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or np.isnan(e).any() or not (np.diff(e) > 0).all():
        raise DataError(f"edges must be at least two strictly increasing numbers, got {tuple(edges)!r}; e.g. "
                        f"(0, 18, 40, 60, 80, inf).")
    raw = np.asarray(ages, dtype=object).ravel()
    missing = pd.isna(raw).astype(bool)
    try:
        values = np.array([math.nan if m else float(v) for v, m in zip(raw, missing)], dtype=np.float64)
    except (TypeError, ValueError):
        bad = next(v for v, m in zip(raw, missing) if not m and not _is_number(v))
        raise DataError(f"ages must be numbers (years) or None/NaN for missing, got {bad!r}.") from None
    outside = ~missing & ((values < e[0]) | (values >= e[-1]))
    if outside.any():
        raise DataError(f"{int(outside.sum())} age(s) fall outside [{e[0]:g}, {e[-1]:g}) (e.g. "
                        f"{values[outside][0]:g}); fix the ages or widen edges (end them with inf for 'N+').")
    labels = np.array([_band_label(lo, hi) for lo, hi in zip(e[:-1], e[1:])], dtype=object)
    idx = np.clip(np.searchsorted(e, np.where(missing, e[0], values), side="right") - 1, 0, e.size - 2)
    return np.where(missing, MISSING, labels[idx]).astype(str)


def _is_number(v: object) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True
