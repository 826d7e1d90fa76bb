"""One answer per research question and method across datasets: the random-effects pooled paired difference.

An RQ table has one row per dataset (and metric, budget, opponent). A reader asks "across my ID datasets, does
generalist+LoRA rival the off-the-shelf specialist?": this module pools the rows that answer the same question --
same RQ, method label, opponent, label budget and metric -- with ``medrival.stats.pooling.pool_random_effects``
(REML tau^2 by default; DerSimonian-Laird on request), each dataset's standard error read off its bootstrap CI.
The pooled CI is a Wald interval across datasets; I^2 says how much the datasets disagree beyond sampling error,
and a large I^2 means the pooled number summarises datasets that answer differently (read the per-dataset rows).
Rows marked as exposed are pooled only when the caller keeps them (``exclude_exposed=False``).
"""
from __future__ import annotations

import math

import pandas as pd

from medrival.stats.pooling import pool_random_effects, standard_error_from_ci

POOL_KEYS = ("method_label", "versus", "budget", "metric")
COLUMNS = ("rq", "method_label", "versus", "budget", "metric", "domain", "k", "datasets", "estimate", "low",
           "high", "p_value", "tau2", "i2", "exposed_left_out", "method")


def _usable(rows: pd.DataFrame, level: float) -> pd.DataFrame:
    """Rows with a finite difference and a CI of positive width (a dataset without a CI cannot be weighted)."""
    keep = rows["difference"].map(math.isfinite) & rows["low"].map(math.isfinite) & rows["high"].map(math.isfinite)
    rows = rows[keep]
    return rows[(rows["high"] - rows["low"]) > 0]


def pooled_differences(tables: dict[str, pd.DataFrame], *, level: float = 0.95, method: str = "reml",
                       exclude_exposed: bool = False) -> pd.DataFrame:
    """One row per (RQ, method label, opponent, budget, metric) answered on at least two datasets: the pooled
    difference A - B with its CI, p-value, tau^2 and I^2 (``COLUMNS``)."""
    out = []
    for rq, table in sorted(tables.items()):
        if table is None or table.empty:
            continue
        keys = [key for key in POOL_KEYS if key in table.columns]
        table = table.assign(versus=table.get("versus", "off-the-shelf generalist"))
        for values, rows in table.groupby(keys, sort=True, dropna=False):
            left_out = int(rows["exposed"].sum()) if exclude_exposed and "exposed" in rows.columns else 0
            if left_out:
                rows = rows[~rows["exposed"].astype(bool)]
            rows = _usable(rows, level)
            if rows["dataset"].nunique() < 2 or len(rows) != rows["dataset"].nunique():
                continue
            se = [standard_error_from_ci(lo, hi, level) for lo, hi in zip(rows["low"], rows["high"])]
            pooled = pool_random_effects(rows["difference"].to_numpy(), se, level=level, method=method)
            out.append({"rq": rq, **dict(zip(keys, values)),
                        "domain": "/".join(sorted({str(d) for d in rows["domain"]})), "k": pooled.k,
                        "datasets": ", ".join(sorted(map(str, rows["dataset"]))), "estimate": pooled.estimate,
                        "low": pooled.low, "high": pooled.high, "p_value": pooled.p_value, "tau2": pooled.tau2,
                        "i2": pooled.i2, "exposed_left_out": left_out, "method": pooled.method})
    return pd.DataFrame(out, columns=list(COLUMNS))
