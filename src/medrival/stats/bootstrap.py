"""Bootstrap confidence intervals and paired bootstrap comparisons for classification metrics.

Methods and references
----------------------
* Nonparametric bootstrap (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 6, 13, 14). The
  percentile interval takes the ``(1 - level)/2`` and ``1 - (1 - level)/2`` quantiles of the bootstrap
  distribution (ch. 13). The BCa interval (ch. 14.3) shifts those quantiles by a bias correction
  ``z0 = Phi^-1(share of resamples below the estimate)`` (ties counted 1/2, so discrete metrics such as accuracy
  are not biased downwards) and an acceleration ``a = sum d^3 / (6 (sum d^2)^1.5)``, ``d = mean - theta_(i)``,
  from a jackknife over the resampling units (eq. 14.15). With more than 200 units the jackknife is grouped
  (delete-a-group): the units are permuted with a seeded generator and cut into 200 contiguous groups whose
  sizes differ by at most one, and each group is left out in turn (the grouped jackknife; Shao & Tu 1995,
  *The Jackknife and Bootstrap*, ch. 2); this keeps BCa at 200 metric evaluations however large the test set.
  When z0 or a is not finite (every resample on one side of the estimate, a constant jackknife), the
  percentile interval is returned and ``method`` says ``"bca->percentile"``.
* Cluster bootstrap (Davison & Hinkley 1997, *Bootstrap Methods and their Application*, §3.8; Field & Welsh
  2007, "Bootstrapping clustered data", JRSS-B 69:369-390): with ``clusters`` (the image id of every VQA
  question, the patient id of every image) whole clusters are resampled with replacement and contribute all
  their items, so correlated items are not counted as independent evidence. Without clusters every item is
  its own cluster. Clusters are numbered by first appearance, so singleton clusters reproduce the item
  bootstrap exactly (same seed, same resamples).
* Paired bootstrap: models A and B are evaluated on the *same* resamples, so the shared test-set noise cancels
  in ``metric(A) - metric(B)``; the CI is the percentile interval of the resampled differences d_1..d_B.
* Paired p-value (two-sided, H0: no difference). The empirical p, the achieved significance level read off the
  bootstrap distribution (Efron & Tibshirani 1993, §15.4 and ch. 16: the level at which the percentile interval
  just reaches 0), is ``p_emp = min(1, 2 min((#{d_b <= 0} + 1)/(B + 1), (#{d_b >= 0} + 1)/(B + 1)))`` (the +1
  of Monte Carlo tests keeps it above 0 and the test valid; Davison & Hinkley 1997, ch. 4). It cannot go below
  its floor 2/(B + 1), reached whenever no resample falls on the far side of 0: with B = 2,000 that is ~0.001,
  so a Holm family of more than ~50 comparisons could never be significant, whatever the effects. The rule:
  ``p = p_emp`` when at least one resample lies on the far side of 0 (the empirical p is resolved); otherwise
  the tail lies beyond what B resamples can count and is extrapolated with the normal tail of the bootstrap
  distribution, ``p = min(2/(B + 1), 2 Phi(-|d_hat| / se_boot))``, ``se_boot`` the standard deviation of the
  d_b (ddof 1) -- the test that inverts the standard normal interval ``d_hat +/- z se_boot`` (Efron &
  Tibshirani 1993, ch. 6 and 12.2). Why this rule and not the normal p everywhere: where the empirical p is
  resolved (every p near the usual 0.05 with B >= 40) it is the one that agrees with the percentile CI that is
  reported next to it and needs no normality, so a CI excluding 0 and p < 1 - level never contradict; only the
  far tail, where it has no information, is extrapolated. The min keeps p monotone in the tail count and the
  test valid at every level (below the floor it rejects only when the normal test does). With no spread
  (se_boot ~ 0: identical models, or every resample giving the same difference) the normal tail is a point
  mass, as in ``delong``: 1 for a zero difference, 0 otherwise. ``PairedComparison.p_floor`` records the
  smallest p the rule could have returned: 0.0 (the normal tail has no Monte Carlo floor; it underflows to 0
  only beyond |z| ~ 38); NaN when the comparison is undefined. The Monte Carlo resolution of the empirical part
  is 2/(n_resamples + 1).
* Hierarchical (two-stage) bootstrap for methods with several training seeds or few-shot draws (Davison &
  Hinkley 1997, §3.8; Bouthillier et al. 2021, "Accounting for variance in machine learning benchmarks"): each
  resample draws D of the D draws with replacement, then the units; its value is the mean of the metric over the
  chosen draws on that one item resample. Seed-to-seed variance therefore widens the interval.

Implementation
--------------
A resample is the vector of multinomial counts of the C units (``rng.integers`` draws counted with
``bincount``); chunks of resamples are count matrices [b, C] evaluated as *weighted* metrics for the whole chunk
at once (``medrival.stats.weighted``): one sort per score column, no per-resample Python loop (except for a
callable metric, which is evaluated on each explicitly rebuilt resample). Chunk k draws from its own stream
``Generator(PCG64(SeedSequence(seed, spawn_key=(k,))))``, so the result is identical run to run and does not
depend on how many threads evaluate the chunks (the chunk size, about 2^19 counts, is a function of the data
size only); the hierarchical draw picks of side s come from ``spawn_key=(k, s)``. Sums of integer counts are
accumulated exactly in integers, so the weighted metrics equal the metrics on rebuilt resamples to the last bit.
The counts of a chunk depend only on (seed, chunk, chunk size, number of units), so comparisons on test sets of
the same size share them: they are kept (read-only uint8, oldest dropped beyond 192 MiB; ``clear_resample_cache``)
and re-used by the next comparison -- the model pairs and metrics of one test set in a Holm family draw them once.
Resamples where the metric is undefined (e.g. no positives drawn) are dropped and counted, with a warning when
more than 1 % are; ``n_resamples`` in the result is the number actually used. NumPy only (no scipy, no torch).
"""
from __future__ import annotations

import math
import os
import threading
import time
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from statistics import NormalDist
from typing import Callable, Sequence

import numpy as np

from medrival.core.errors import ConfigError, DataError
from medrival.core.registry import suggest
from medrival.stats.types import Interval, PairedComparison
from medrival.stats.weighted import (
    METRIC_NAMES,
    CallableMetric,
    NamedMetric,
    check_inputs,
    check_metric_name,
    check_task,
    units_bound,
)

__all__ = ["METRIC_NAMES", "METHODS", "BootstrapWarning", "bootstrap_ci", "paired_bootstrap",
           "hierarchical_bootstrap_ci", "paired_hierarchical_bootstrap", "bootstrap_speed", "family_speed",
           "clear_resample_cache"]

METHODS = ("percentile", "bca")
_CHUNK_ELEMENTS = 1 << 19  # counts per chunk (2 MiB of int32): the chunk's working arrays stay in cache
_MAX_CHUNK = 1024
_JACKKNIFE_GROUPS = 200
_JACKKNIFE_KEY = 2**32 - 1  # spawn key of the jackknife permutation; chunks use keys 0, 1, 2, ...
_PARALLEL_MIN_WORK = 2_000_000  # resamples x units below which starting threads costs more than it saves
_MAX_THREADS = 8
_ONE_BINCOUNT = 1 << 17  # up to this many counts per chunk, one bincount over all rows beats a loop over rows
_UNDEFINED_SHARE = 0.01  # warn when more resamples than this are dropped
_ZERO_SE = 1e-12  # bootstrap SEs (and differences) below this are rounding: the differences are a point mass
_P_FLOOR = 0.0  # the smallest p the paired rule can return (the normal tail has no Monte Carlo floor)
_COUNTS_CACHE_BYTES = 192 << 20  # resample counts kept for reuse (uint8): ~9 test sets of 10,000 items at B = 2,000
_COUNTS_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()


class BootstrapWarning(UserWarning):
    """Some bootstrap resamples had an undefined metric and were dropped."""


# ------------------------------------------------------------------------------------------------- checks


def _check_options(n_resamples, level, seed) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ConfigError(f"n_resamples must be a whole number >= 1, got {n_resamples!r}; 2000 is usual for a CI, "
                          f"10000 for p-values near 0.05.")
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < level < 1:
        raise ConfigError(f"level must be strictly between 0 and 1 (0.95 for a 95 % interval), got {level!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}.")


def _check_method(method) -> str:
    if method in METHODS:
        return method
    close = suggest(str(method), list(METHODS))
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise ConfigError(f"Unknown bootstrap interval method {method!r}.{hint} Known: {', '.join(METHODS)}.")


def _check_draws(draws, name: str) -> list:
    if isinstance(draws, np.ndarray) and draws.ndim >= 2:
        draws = list(draws)  # a [D, N] or [D, N, K] stack of draws
    if not isinstance(draws, Sequence) or len(draws) == 0:
        raise DataError(f"{name} must be a non-empty list of score arrays, one per seed/draw, all on the same test "
                        f"items; got {type(draws).__name__}. For a single model use bootstrap_ci/paired_bootstrap.")
    return list(draws)


# ------------------------------------------------------------------------------------------ design & data


@dataclass(frozen=True)
class _Design:
    """What is resampled: ``units[i]`` is the cluster (0..n_units-1) of item i."""

    units: np.ndarray
    n_units: int
    n_items: int

    @property
    def chunk(self) -> int:
        return int(np.clip(_CHUNK_ELEMENTS // max(self.n_units, self.n_items), 1, _MAX_CHUNK))


def _n_items(y_true) -> int:
    shape = np.shape(y_true)
    if len(shape) == 0:
        raise DataError(f"y_true must be an array with one row per item, got a scalar {y_true!r}.")
    return int(shape[0])


def _design(clusters, y_true) -> _Design:
    n_items = _n_items(y_true)
    if clusters is None:
        return _Design(np.arange(n_items), n_items, n_items)
    ids = np.asarray(clusters)
    if ids.ndim != 1 or ids.shape[0] != n_items:
        raise DataError(f"clusters must hold one id per item ({n_items} items), got shape {ids.shape}; pass e.g. "
                        f"the image id of every question or the patient id of every image.")
    if ids.dtype.kind == "f" and np.isnan(ids).any():
        raise DataError("clusters contains NaN; every item needs a cluster id (use the item's own id if unknown).")
    try:
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    except TypeError:
        raise DataError("clusters mixes id types that cannot be compared (e.g. None and str); pass ids of one type, "
                        "e.g. strings.") from None
    # Number clusters by first appearance: with singleton clusters this reproduces the item bootstrap exactly.
    rank = np.empty(first.size, dtype=np.intp)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return _Design(rank[inverse.ravel()], int(first.size), n_items)


def _evaluators(metric, y_true, scores: list, design: _Design, task, names: list[str]) -> tuple[str, list]:
    """(metric label, one evaluator per score array), all validated against ``y_true``."""
    if callable(metric):
        if task is not None:
            check_task(task)  # unused by a callable, but a typo should not pass silently
        y = np.asarray(y_true)
        evaluators = []
        for s, name in zip(scores, names):
            s = np.asarray(s)
            if s.ndim == 0 or s.shape[0] != design.n_items:
                raise DataError(f"{name} has shape {s.shape} but y_true has {design.n_items} rows; they must describe "
                                f"the same items in the same order.")
            evaluators.append(CallableMetric(metric, y, s, design.units))
        return getattr(metric, "__name__", type(metric).__name__), evaluators
    if not isinstance(metric, str):
        raise ConfigError(f"metric must be a metric name or a callable f(y_true, y_score) -> float, got "
                          f"{type(metric).__name__}.")
    check_metric_name(metric)
    checked = [check_inputs(y_true, s, task, score_name=name) for s, name in zip(scores, names)]
    kinds = {(kind, s.shape[1] if kind != "binary" else 2) for kind, _, s in checked}
    if len(kinds) > 1:
        raise DataError(f"{', '.join(names)} must be scores for the same task and classes, got {sorted(kinds)}.")
    max_total = units_bound(design.units, design.n_units, design.n_units)
    return metric, [NamedMetric(metric, kind, y, s, design.units, design.n_units, max_total)
                    for kind, y, s in checked]


# ---------------------------------------------------------------------------------------------- resampling


def _generator(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=key)))


def _counts(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """[b, n] int32 multinomial(n; 1/n, ..., 1/n) counts: n draws with replacement per row, counted per row."""
    # int32 draws: the same stream as the default int64 (NumPy draws 32-bit values for ranges < 2^32), half the
    # memory traffic; the drawing dominates the cost of a resample.
    draws = rng.integers(0, n, size=(b, n), dtype=np.int32)
    if b * n <= _ONE_BINCOUNT:
        draws += (np.arange(b, dtype=np.int32) * n)[:, None]  # row offsets (b n <= 2^17): one bincount per chunk
        return np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.int32)
    counts = np.empty((b, n), dtype=np.int32)
    for row, drawn in zip(counts, draws):  # row by row: a cache-sized output is faster than one huge bincount
        row[:] = np.bincount(drawn, minlength=n)
    return counts


def _item_counts(seed: int, k: int, b: int, n_units: int) -> np.ndarray:
    """Chunk k's resample counts [b, n_units] (stream (seed, k)), kept for reuse under a memory cap.

    They depend on nothing but (seed, k, b, n_units), so every comparison on a test set of the same size -- the
    model pairs, metrics and research questions of a Holm family at grid size -- draws the very same resamples;
    drawing them is most of a comparison's cost. Returned and kept as read-only uint8 (a unit drawn 256 times in one
    resample is impossible in practice; such a chunk stays int32 and is not kept): a quarter of the memory, and the
    metrics' per-chunk temporaries stay small enough for malloc to recycle them instead of returning them to the
    system and faulting them back in (that more than halved a warm comparison's CPU time at n = 10,000). The oldest
    chunks are dropped beyond ``_COUNTS_CACHE_BYTES``. Every metric sums the counts exactly in integers (or converts
    them to float64), so results are identical to int32 counts drawn afresh, with or without the cache, whatever the
    thread count.
    """
    key = (int(seed), k, b, n_units)
    with _CACHE_LOCK:
        kept = _COUNTS_CACHE.get(key)
        if kept is not None:
            _COUNTS_CACHE.move_to_end(key)
    if kept is not None:
        return kept
    counts = _counts(_generator(seed, k), b, n_units)
    if counts.max(initial=0) >= 256:
        return counts  # int32, not kept
    counts = counts.astype(np.uint8)  # every evaluator reads uint8 counts, whether drawn now or kept
    counts.flags.writeable = False  # shared between comparisons and threads
    if counts.nbytes <= _COUNTS_CACHE_BYTES // 4:
        with _CACHE_LOCK:
            _COUNTS_CACHE[key] = counts
            while sum(c.nbytes for c in _COUNTS_CACHE.values()) > _COUNTS_CACHE_BYTES:
                _COUNTS_CACHE.popitem(last=False)
    return counts


def clear_resample_cache() -> None:
    """Forget the kept resample counts (memory; the results do not depend on them)."""
    with _CACHE_LOCK:
        _COUNTS_CACHE.clear()


def _workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, _MAX_THREADS))


def _run_chunks(fn: Callable, n_resamples: int, design: _Design, parallel: bool) -> np.ndarray:
    """``fn(k, b)`` for every chunk (k-th chunk of b resamples), results concatenated along the last axis."""
    b = design.chunk
    jobs = [(k, min(b, n_resamples - start)) for k, start in enumerate(range(0, n_resamples, b))]
    big = n_resamples * max(design.n_units, design.n_items) >= _PARALLEL_MIN_WORK
    workers = _workers() if parallel and big else 1
    if workers > 1 and len(jobs) > 1:
        # NumPy releases the GIL in the heavy loops (random draws, take, cumsum, einsum, matmul).
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(lambda job: fn(*job), jobs))
    else:
        parts = [fn(k, size) for k, size in jobs]
    return np.concatenate(parts, axis=-1)


def _chunk_values(k: int, b: int, *, evaluators: list, seed: int, n_units: int) -> np.ndarray:
    """[E, b]: every evaluator on the same b resamples (paired)."""
    counts = _item_counts(seed, k, b, n_units)
    cache: dict = {}  # arrays shared by evaluators of the same labels (e.g. positives' weights)
    return np.stack([ev(counts, cache) for ev in evaluators])


def _mean_of_picked(values: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Per row, the mean of ``values`` [b, D] over draws picked ``picks`` [b, D] times; NaN if a pick is NaN."""
    picked = picks > 0
    bad = (~np.isfinite(values) & picked).any(axis=1)
    mean = (np.where(picked, values, 0.0) * picks).sum(axis=1) / picks.shape[1]
    mean[bad] = np.nan
    return mean


def _chunk_hierarchical(k: int, b: int, *, sides: list[list], seed: int, n_units: int) -> np.ndarray:
    """[S, b]: per side, the mean over its resampled draws; the item resample is shared by all sides."""
    counts = _item_counts(seed, k, b, n_units)
    cache: dict = {}
    out = []
    for side, evaluators in enumerate(sides):
        values = np.stack([ev(counts, cache) for ev in evaluators], axis=1)
        picks = _counts(_generator(seed, k, side), b, len(evaluators))  # draws with replacement, own stream
        out.append(_mean_of_picked(values, picks))
    return np.stack(out)


def _parallel(evaluators: list) -> bool:
    return all(getattr(ev, "threadsafe", False) for ev in evaluators)


# ------------------------------------------------------------------------------------------------ intervals


def _defined(values: np.ndarray, metric: str, design: _Design) -> np.ndarray:
    """Mask of resamples (last axis) where every value is finite; warns when more than 1 % are not."""
    keep = np.isfinite(values).all(axis=0) if values.ndim == 2 else np.isfinite(values)
    dropped, total = int(keep.size - keep.sum()), int(keep.size)
    if dropped > _UNDEFINED_SHARE * total:
        warnings.warn(
            f"{dropped} of {total} bootstrap resamples ({100 * dropped / total:.1f} %) had an undefined {metric} "
            f"(e.g. a resample without positives or negatives of some class) and were dropped; the interval uses "
            f"the other {total - dropped}. A resample of {design.n_units} clusters/items can miss a rare class: too "
            f"few clusters? Use more data or a metric defined on every resample.", BootstrapWarning, stacklevel=3)
    return keep


def _percentile(boot: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2
    low, high = np.quantile(boot, [tail, 1 - tail])
    return float(low), float(high)


def _jackknife(evaluator, design: _Design, seed: int) -> np.ndarray:
    """Leave-one-unit-out values, or leave-one-group-out over 200 groups of a seeded permutation of the units."""
    c = design.n_units
    if c <= _JACKKNIFE_GROUPS:
        group, n_groups = np.arange(c), c
    else:
        perm = _generator(seed, _JACKKNIFE_KEY).permutation(c)
        group, n_groups = np.empty(c, dtype=np.intp), _JACKKNIFE_GROUPS
        group[perm] = np.arange(c) * n_groups // c  # contiguous runs of the permutation, sizes differ by <= 1
    values = []
    for start in range(0, n_groups, design.chunk):
        left_out = np.arange(start, min(n_groups, start + design.chunk))
        counts = (group[None, :] != left_out[:, None]).astype(np.int32)
        values.append(evaluator(counts, {}))
    return np.concatenate(values)


def _bca(boot: np.ndarray, estimate: float, jack: np.ndarray, level: float) -> tuple[float, float] | None:
    """BCa bounds (Efron & Tibshirani 1993, eq. 14.9-14.15), or None when z0 or the acceleration is not finite."""
    normal = NormalDist()
    below = (np.sum(boot < estimate) + 0.5 * np.sum(boot == estimate)) / boot.size
    d = jack.mean() - jack
    spread = float(np.sum(d ** 2))
    if not 0 < below < 1 or not np.isfinite(jack).all() or spread == 0:
        return None
    z0 = normal.inv_cdf(below)
    accel = float(np.sum(d ** 3)) / (6 * spread ** 1.5)
    shares = []
    for z in (normal.inv_cdf((1 - level) / 2), normal.inv_cdf(1 - (1 - level) / 2)):
        shift = 1 - accel * (z0 + z)
        if not shift > 0:
            return None
        shares.append(normal.cdf(z0 + (z0 + z) / shift))
    low, high = np.quantile(boot, shares)
    return float(low), float(high)


def _nan_interval(estimate: float, level: float, method: str, design: _Design) -> Interval:
    nan = float("nan")
    return Interval(float(estimate), nan, nan, float(level), method, 0, design.n_units)


# ------------------------------------------------------------------------------------------------- public API


def bootstrap_ci(metric, y_true, y_score, *, clusters=None, n_resamples: int = 2000, level: float = 0.95,
                 method: str = "percentile", seed: int = 0, task=None) -> Interval:
    """Bootstrap CI of ``metric`` (a name in ``METRIC_NAMES`` or a callable ``f(y_true, y_score)``).

    ``clusters``: one id per item; whole clusters are resampled (cluster bootstrap). ``method``: "percentile" or
    "bca" (reported as "bca->percentile" when BCa is not defined). ``task``: "binary", "multiclass",
    "multilabel", or None to infer it from the shapes. A NaN estimate on the full data gives a NaN interval.
    """
    _check_options(n_resamples, level, seed)
    method = _check_method(method)
    design = _design(clusters, y_true)
    label, (evaluator,) = _evaluators(metric, y_true, [y_score], design, task, ["y_score"])
    estimate = evaluator.estimate()
    if not np.isfinite(estimate):
        return _nan_interval(estimate, level, method, design)
    chunk = partial(_chunk_values, evaluators=[evaluator], seed=seed, n_units=design.n_units)
    values = _run_chunks(chunk, n_resamples, design, _parallel([evaluator]))[0]
    boot = values[_defined(values, label, design)]
    if boot.size == 0:
        return _nan_interval(estimate, level, method, design)
    bounds = _bca(boot, estimate, _jackknife(evaluator, design, seed), level) if method == "bca" else None
    if method == "bca" and bounds is None:
        method = "bca->percentile"
    low, high = bounds if bounds is not None else _percentile(boot, level)
    return Interval(estimate, low, high, float(level), method, int(boot.size), design.n_units)


def _empirical_p(d: np.ndarray) -> tuple[float, float]:
    """(two-sided Monte Carlo p of the bootstrap differences ``d``, its floor 2/(B + 1))."""
    used = d.size
    tail = min(int(np.sum(d <= 0)), int(np.sum(d >= 0)))
    return min(1.0, 2 * (tail + 1) / (used + 1)), min(1.0, 2 / (used + 1))


def _normal_p(difference: float, d: np.ndarray) -> float:
    """Two-sided p of z = difference / se_boot; a point mass (1 or 0) when the differences do not spread."""
    if d.size < 2:
        return 1.0  # one resample says nothing about the spread: no evidence beyond the empirical p
    se = float(np.std(d, ddof=1))
    if not se > _ZERO_SE:
        return 1.0 if abs(difference) <= _ZERO_SE else 0.0
    # erfc(|z|/sqrt 2) = 2 Phi(-|z|) without the cancellation of 1 - Phi: accurate far into the tail.
    return math.erfc(abs(difference) / se / math.sqrt(2))


def _bootstrap_p(difference: float, d: np.ndarray) -> float:
    """The module's p rule: the empirical p where resolved, else the normal tail capped at the floor."""
    p_emp, floor = _empirical_p(d)
    if p_emp > floor:
        return p_emp
    return min(floor, _normal_p(difference, d))


def _paired_result(label: str, est_a: float, est_b: float, values: np.ndarray | None, level: float, method: str,
                   design: _Design) -> PairedComparison:
    """Difference A - B with its percentile CI and two-sided bootstrap p-value from ``values`` [2, B]."""
    nan = float("nan")
    diff, low, high, p, p_floor, used = est_a - est_b, nan, nan, nan, nan, 0
    if values is not None:
        keep = _defined(values, label, design)
        d = values[0, keep] - values[1, keep]
        if d.size:
            low, high = _percentile(d, level)
            p, p_floor, used = _bootstrap_p(float(diff), d), _P_FLOOR, int(d.size)
    return PairedComparison(label, float(est_a), float(est_b), float(diff), low, high, p, float(level), method,
                            design.n_items, design.n_units, used, p_floor)


def paired_bootstrap(metric, y_true, score_a, score_b, *, clusters=None, n_resamples: int = 2000,
                     level: float = 0.95, seed: int = 0, task=None) -> PairedComparison:
    """metric(A) - metric(B) on the same items, with a paired (cluster) bootstrap CI and two-sided p-value."""
    _check_options(n_resamples, level, seed)
    design = _design(clusters, y_true)
    label, evaluators = _evaluators(metric, y_true, [score_a, score_b], design, task, ["score_a", "score_b"])
    est_a, est_b = (ev.estimate() for ev in evaluators)
    values = None
    if np.isfinite(est_a) and np.isfinite(est_b):
        chunk = partial(_chunk_values, evaluators=evaluators, seed=seed, n_units=design.n_units)
        values = _run_chunks(chunk, n_resamples, design, _parallel(evaluators))
    return _paired_result(label, est_a, est_b, values, level, "paired-bootstrap", design)


def _draw_evaluators(metric, y_true, sides: dict[str, list], design: _Design, task) -> tuple[str, list, list]:
    """(label, evaluators per side, mean full-data estimate per side); all sides validated together."""
    names = [f"{side}[{i}]" for side, draws in sides.items() for i in range(len(draws))]
    label, evaluators = _evaluators(metric, y_true, [s for d in sides.values() for s in d], design, task, names)
    per_side, estimates, start = [], [], 0
    for draws in sides.values():
        chosen = evaluators[start:start + len(draws)]
        per_side.append(chosen)
        estimates.append(float(np.mean([ev.estimate() for ev in chosen])))
        start += len(draws)
    return label, per_side, estimates


def hierarchical_bootstrap_ci(metric, y_true, scores_by_draw, *, clusters=None, n_resamples: int = 2000,
                              level: float = 0.95, seed: int = 0, task=None) -> Interval:
    """CI of the mean metric over D seeds/draws: each resample draws D draws with replacement, then the items.

    ``scores_by_draw``: list of D score arrays on the same items. Method "hierarchical-percentile".
    """
    _check_options(n_resamples, level, seed)
    draws = _check_draws(scores_by_draw, "scores_by_draw")
    design = _design(clusters, y_true)
    label, (evaluators,), (estimate,) = _draw_evaluators(metric, y_true, {"scores_by_draw": draws}, design, task)
    method = "hierarchical-percentile"
    if not np.isfinite(estimate):
        return _nan_interval(estimate, level, method, design)
    chunk = partial(_chunk_hierarchical, sides=[evaluators], seed=seed, n_units=design.n_units)
    values = _run_chunks(chunk, n_resamples, design, _parallel(evaluators))[0]
    boot = values[_defined(values, label, design)]
    if boot.size == 0:
        return _nan_interval(estimate, level, method, design)
    low, high = _percentile(boot, level)
    return Interval(estimate, low, high, float(level), method, int(boot.size), design.n_units)


def paired_hierarchical_bootstrap(metric, y_true, draws_a, draws_b, *, clusters=None, n_resamples: int = 2000,
                                  level: float = 0.95, seed: int = 0, task=None) -> PairedComparison:
    """Mean metric over A's draws minus mean over B's draws; draws resampled independently per side, items shared.

    With one draw per side this equals ``paired_bootstrap`` (same resamples). Method "paired-hierarchical-bootstrap".
    """
    _check_options(n_resamples, level, seed)
    draws_a, draws_b = _check_draws(draws_a, "draws_a"), _check_draws(draws_b, "draws_b")
    design = _design(clusters, y_true)
    sides = {"draws_a": draws_a, "draws_b": draws_b}
    label, (evs_a, evs_b), (est_a, est_b) = _draw_evaluators(metric, y_true, sides, design, task)
    values = None
    if np.isfinite(est_a) and np.isfinite(est_b):
        chunk = partial(_chunk_hierarchical, sides=[evs_a, evs_b], seed=seed, n_units=design.n_units)
        values = _run_chunks(chunk, n_resamples, design, _parallel(evs_a + evs_b))
    return _paired_result(label, est_a, est_b, values, level, "paired-hierarchical-bootstrap", design)


# ---------------------------------------------------------------------------------------------------- speed


def _speed_data(n_items: int, rng: np.random.Generator, gap: float = 0.2) -> tuple[np.ndarray, ...]:
    """Seeded binary labels and two correlated score vectors, A's class separation ``gap`` above B's."""
    y = rng.integers(0, 2, size=n_items)
    shared = rng.normal(size=n_items)  # common difficulty per item: the two models' scores are correlated
    score_a = (0.8 + gap) * y + shared + 0.7 * rng.normal(size=n_items)
    score_b = 0.8 * y + shared + 0.7 * rng.normal(size=n_items)
    return y, score_a, score_b


def bootstrap_speed(n_items: int = 10_000, n_resamples: int = 10_000, seed: int = 0) -> dict:
    """Time ``paired_bootstrap("auroc")`` on seeded synthetic binary data (two correlated score vectors).

    The issue's target: B = 10,000 resamples of n = 10,000 items in <= 2 s on 2 cores.
    """
    y, score_a, score_b = _speed_data(n_items, np.random.default_rng(seed))
    clear_resample_cache()  # timed cold: the resamples are drawn, not reused from an earlier call
    start = time.perf_counter()
    result = paired_bootstrap("auroc", y, score_a, score_b, n_resamples=n_resamples, seed=seed)
    seconds = time.perf_counter() - start
    return {"bootstrap_s": round(seconds, 3), "difference": result.difference, "low": result.low,
            "high": result.high, "p_value": result.p_value, "n_items": n_items, "n_resamples": n_resamples,
            "threads": _workers()}


def family_speed(n_comparisons: int = 300, n_items: int = 10_000, n_resamples: int = 2000, seed: int = 0,
                 gap: float = 0.12, per_test_set: int = 10) -> dict:
    """Time a Holm family of ``n_comparisons`` paired AUROC bootstraps at grid size (the issue's target: 300
    comparisons at n = 10,000 in <= 30 s on 2 cores).

    Shaped like a study's family: ``per_test_set`` comparisons on each test set (each with its own seeded labels
    and scores; the resamples depend only on the test set's size); test set j has ``n_items + j`` items, so no
    two test sets share resamples (``_item_counts``) and the first comparison on each is timed cold. With ``gap``
    = 0.12 the true AUROC differences are about 5.5 bootstrap SEs at n = 10,000: the family should be all
    significant after Holm, which the empirical p alone (floor 2/(B + 1)) could never be.
    """
    from medrival.stats.multiple import holm

    clear_resample_cache()
    seconds, results = [], []
    for k in range(n_comparisons):  # data made one comparison at a time (not timed): 300 x 10,000 x 3 floats
        y, a, b = _speed_data(n_items + k // per_test_set, _generator(seed, k), gap)
        start = time.perf_counter()
        results.append(paired_bootstrap("auroc", y, a, b, n_resamples=n_resamples, seed=seed))
        seconds.append(time.perf_counter() - start)
    clear_resample_cache()
    cold = np.arange(n_comparisons) % per_test_set == 0
    p = np.array([r.p_value for r in results])
    z = np.array([r.difference / ((r.high - r.low) / (2 * NormalDist().inv_cdf(1 - (1 - r.level) / 2)))
                  for r in results])  # effect in SEs, the SE read off the percentile CI's width
    return {"family_s": round(float(np.sum(seconds)), 3), "n_comparisons": n_comparisons, "n_items": n_items,
            "n_resamples": n_resamples, "test_sets": int(cold.sum()),
            "cold_s_per_comparison": round(float(np.mean(np.array(seconds)[cold])), 4),
            "warm_s_per_comparison": round(float(np.mean(np.array(seconds)[~cold])), 4) if (~cold).any() else None,
            "holm_significant": int(np.sum(holm(p) <= 0.05)), "max_p": float(p.max()),
            "empirical_p_floor": 2 / (n_resamples + 1), "median_effect_se": round(float(np.median(z)), 2),
            "threads": _workers()}
