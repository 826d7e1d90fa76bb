"""Result types shared by every statistical procedure (plain dataclasses; JSON-able via ``as_dict``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval.

    ``method``: "percentile", "bca", "delong", "hierarchical-percentile", ...; ``n_resamples`` is 0 for analytic
    intervals; ``n_clusters`` is the number of independent units resampled (images, patients, or items when
    there is no clustering)."""

    estimate: float
    low: float
    high: float
    level: float
    method: str
    n_resamples: int = 0
    n_clusters: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PairedComparison:
    """Metric of A, of B, and the difference A - B with its CI and a two-sided p-value (H0: no difference).

    ``p_floor``: the smallest p-value the procedure could have returned for this comparison, so that a reader (or
    a verdict) can tell whether a multiple-comparison family could pass at all (Holm needs the smallest p below
    alpha / m): 1/(n_permutations + 1) for the permutation test (a Monte Carlo count), 0.0 for the paired
    bootstrap (its far tail is a normal tail, ``medrival.stats.bootstrap``) and DeLong (a normal test), NaN when
    the p-value is undefined or the procedure does not record it."""

    metric: str
    estimate_a: float
    estimate_b: float
    difference: float
    low: float
    high: float
    p_value: float
    level: float
    method: str  # "paired-bootstrap", "delong", "permutation"
    n_items: int
    n_clusters: int
    n_resamples: int = 0
    p_floor: float = float("nan")

    def as_dict(self) -> dict:
        return asdict(self)
