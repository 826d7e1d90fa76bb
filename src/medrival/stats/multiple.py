"""Multiple-comparison adjusted p-values: Holm's step-down (family-wise error) and Benjamini-Hochberg (FDR).

Both return adjusted p-values in the input order: a hypothesis is rejected at level alpha exactly when its
adjusted p-value is <= alpha. Adjusted values are monotone in the raw p-values and clipped to 1; they match
``statsmodels.stats.multitest.multipletests(p, method="holm")`` and ``method="fdr_bh"`` (tested), ties included.

NaN entries (a comparison whose p-value is undefined, e.g. a metric that was NaN) are passed through as NaN and
are *not* counted in the family size m: they are treated as comparisons that were not made. If you want an
undefined comparison to count against the others, replace its NaN by 1 before adjusting.

References:
    S. Holm (1979). A simple sequentially rejective multiple test procedure. Scand. J. Statist. 6(2), 65-70.
    Y. Benjamini, Y. Hochberg (1995). Controlling the false discovery rate: a practical and powerful approach to
        multiple testing. J. R. Statist. Soc. B 57(1), 289-300.
"""
from __future__ import annotations

import numpy as np

from medrival.core.errors import DataError


def _check_p_values(p_values: object) -> np.ndarray:
    """A 1-D float array of p-values in [0, 1] or NaN."""
    try:
        p = np.asarray(p_values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"p_values must be numbers, got {p_values!r}; pass a list or 1-D array of p-values.") from None
    if p.ndim != 1:
        raise DataError(f"p_values must be a 1-D list of p-values, got an array of shape {p.shape}; "
                        f"adjust each family separately (flatten it first if it is one family).")
    bad = ~np.isnan(p) & ~((p >= 0.0) & (p <= 1.0))
    if bad.any():
        raise DataError(f"p_values must lie in [0, 1] (or be NaN for an undefined comparison), got "
                        f"{p[bad][:5].tolist()}; pass p-values, not test statistics or -log10(p).")
    return p


def _adjust(p_values: object, step) -> np.ndarray:
    """Apply ``step(sorted finite p) -> adjusted`` to the non-NaN entries, keeping NaN in place."""
    p = _check_p_values(p_values)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    if finite.size:
        order = np.argsort(p[finite], kind="stable")
        out[finite[order]] = np.minimum(step(p[finite][order]), 1.0)
    return out


def _holm_step(ranked: np.ndarray) -> np.ndarray:
    m = ranked.size
    # The i-th smallest p is multiplied by (m - i + 1); the running maximum keeps the step-down monotone.
    return np.maximum.accumulate((m - np.arange(m)) * ranked)


def _bh_step(ranked: np.ndarray) -> np.ndarray:
    m = ranked.size
    # p_(i) * m / i, then the running minimum from the largest p down (the step-up).
    return np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as the input; NaN passed through, not counted in m)."""
    return _adjust(p_values, _holm_step)


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg (FDR) adjusted p-values (same order as the input; NaN passed through, not counted in m)."""
    return _adjust(p_values, _bh_step)
