"""Verdicts for paired comparisons A - B against a non-inferiority margin, tables of them, and summary lines.

Following Jeong et al. (2024), who found that medically adapted models rarely beat their generalist base once
the uncertainty is accounted for, a verdict is read from the confidence interval of the difference, oriented so
that a positive difference means "A is better" (``higher_is_better(metric)``: Brier, ECE and the VQA
``undecided_rate`` are mirrored). With a margin m >= 0 (the largest loss that still counts as "as good"), the CI
[low, high] of the oriented difference gives one of four verdicts:

* ``superior``      -- low > 0: A is better;
* ``non-inferior``  -- low > -m but not superior: A is at most m worse (this includes a CI inside (-m, 0));
* ``inferior``      -- high < 0 and low <= -m: A is worse, and not within the margin;
* ``inconclusive``  -- anything else: the CI spans 0 and reaches below -m; nothing is claimed.

With m = 0 "non-inferior" cannot occur and the verdicts are superiority / inferiority tests (Piaggio et al. 2012,
CONSORT extension for non-inferiority trials, figure 1 uses the same reading of the CI).

Two verdicts are reported per comparison in ``verdict_table``:

* ``verdict`` -- from the comparison's own (uncorrected) CI, as ``verdict()``;
* ``verdict_corrected`` -- controls the family of comparisons. A CI at the Holm-adjusted level cannot be
  re-computed from a stored comparison, so the corrected verdict uses adjusted p-values (Holm, Benjamini-Hochberg
  or none, per ``correction``): the two-sided superiority p-value of each comparison, and a one-sided
  non-inferiority p-value for H0: difference <= -m, taken from the same CI (its standard error is the distance from
  the estimate to the lower bound over z, so that without correction "p < (1 - level) / 2" is exactly
  "low > -m"). Superior (inferior) when the adjusted superiority p is < 1 - level and the difference is > 0 (< 0);
  a significant loss that is within the margin (adjusted non-inferiority p < (1 - level) / 2) is non-inferior;
  non-inferior when only the adjusted non-inferiority p is significant; inconclusive otherwise, including NaN
  p-values.

Summary lines count the four corrected verdicts separately and never merge an inconclusive result with a win.

References:
    D. P. Jeong, S. Garg, Z. C. Lipton, M. Oberst (2024). Limited impact of medical adaptation of large language
        and vision-language models. EMNLP 2024.
    G. Piaggio, D. R. Elbourne, S. J. Pocock, S. J. W. Evans, D. G. Altman (2012). Reporting of noninferiority and
        equivalence randomized trials: extension of the CONSORT 2010 statement. JAMA 308(24):2594-2604.
    S. Holm (1979); Y. Benjamini, Y. Hochberg (1995) -- see ``medrival.stats.multiple``.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Mapping, Sequence

import numpy as np

from medrival.core.errors import DataError, UnknownNameError
from medrival.core.registry import suggest
from medrival.stats.delong import check_level
from medrival.stats.multiple import benjamini_hochberg, holm
from medrival.stats.types import PairedComparison

CORRECTIONS = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no correction"}
VERDICTS = ("superior", "non-inferior", "inconclusive", "inferior")

# Default non-inferiority margins per metric (absolute differences): a loss this small is "as good". AUROC 0.02
# follows the two-point margin common in diagnostic-accuracy non-inferiority work; accuracy-like metrics and the
# VQA scores use 0.03 (about the run-to-run spread of fine-tuned models on a few hundred items); Brier and ECE 0.01.
# A study sets its own with ``verdicts: {margin: {auroc: 0.01}}``; a metric not listed here gets margin 0.
DEFAULT_MARGINS: dict[str, float] = {
    "auroc": 0.02, "accuracy": 0.03, "balanced_accuracy": 0.03, "macro_f1": 0.03, "brier": 0.01, "ece": 0.01,
    "closed_accuracy": 0.03, "yes_no_accuracy": 0.03, "choice_accuracy": 0.03, "mc_accuracy": 0.03,
    "undecided_rate": 0.03, "open_exact_match": 0.03, "open_token_f1": 0.03, "open_token_recall": 0.03,
    "open_bleu1": 0.03, "open_rouge_l": 0.03, "open_recall_at_0_75": 0.03, "yes_no_auroc": 0.02,
}


def higher_is_better(metric: str) -> bool:
    """The orientation the metric registry declares (``medrival.metrics.registry``): False for Brier, ECE and the
    VQA ``undecided_rate``. An unknown name raises ``UnknownNameError`` with close matches, so a typo cannot
    silently become a higher-is-better metric."""
    from medrival.metrics.registry import higher_is_better as registered_orientation

    return registered_orientation(metric)


def check_margin(margin, metric: str | None = None) -> float:
    """A margin is a finite number >= 0 (a difference that counts as practically zero)."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float, np.integer, np.floating)) \
            or not math.isfinite(margin) or margin < 0:
        where = f" for {metric!r}" if metric else ""
        raise DataError(f"margin{where} must be a finite number >= 0 (the largest loss that still counts as as "
                        f"good, e.g. 0.02 AUROC), got {margin!r}.")
    return float(margin)


def margins_for(metrics: Sequence[str], margins: Mapping[str, float] | None = None) -> list[float]:
    """The margin of each metric: the study's ``margins`` first, then ``DEFAULT_MARGINS``, else 0."""
    chosen = {**DEFAULT_MARGINS, **dict(margins or {})}
    return [check_margin(chosen.get(metric, 0.0), metric) for metric in metrics]


def _oriented_interval(comparison: PairedComparison, higher_is_better: bool) -> tuple[float, float, float]:
    """(difference, low, high) turned so that a positive difference means A is better."""
    d, low, high = comparison.difference, comparison.low, comparison.high
    return (d, low, high) if higher_is_better else (-d, -high, -low)


def _from_interval(low: float, high: float, margin: float) -> str:
    if low > 0:
        return "superior"
    if low > -margin:
        return "non-inferior"
    if high < 0:
        return "inferior"
    return "inconclusive"


def verdict(comparison: PairedComparison, *, margin: float = 0.0, higher_is_better: bool = True) -> str:
    """superior / non-inferior / inconclusive / inferior from the comparison's own CI against ``margin`` (see
    the module docstring). A comparison without a CI (the permutation test reports NaN bounds) falls back to its
    p-value: superior/inferior when p < 1 - level, inconclusive otherwise; a margin cannot be judged without an
    interval, so a non-zero ``margin`` then raises ``DataError``."""
    margin = check_margin(margin)
    d, low, high = _oriented_interval(comparison, higher_is_better)
    if math.isnan(low) or math.isnan(high):
        if margin != 0:
            raise DataError(f"this {comparison.method!r} comparison has no confidence interval, so a margin of "
                            f"{margin} cannot be judged; use margin=0 (verdict from the p-value) or a CI method "
                            f"such as the paired bootstrap.")
        return _from_tests(d, comparison.p_value, math.nan, 1.0 - comparison.level)
    return _from_interval(low, high, margin)


def non_inferiority_p(comparison: PairedComparison, margin: float, higher_is_better: bool = True) -> float:
    """One-sided p-value of H0: (oriented) difference <= -margin, with the standard error read off the CI's lower
    side, so that "p < (1 - level) / 2" is exactly "low > -margin". NaN without a CI or with a zero-width one."""
    d, low, _ = _oriented_interval(comparison, higher_is_better)
    z = NormalDist().inv_cdf(0.5 + comparison.level / 2) if 0 < comparison.level < 1 else math.nan
    se = (d - low) / z
    if not (se > 0) or math.isnan(d):
        return math.nan
    return float(NormalDist().cdf(-(d + margin) / se))


def _from_tests(difference: float, p_superiority: float, p_non_inferiority: float, alpha: float) -> str:
    """The corrected verdict from the adjusted two-sided superiority p and one-sided non-inferiority p
    (``difference`` oriented: > 0 means A is better); NaN p-values are not significant."""
    non_inferior = p_non_inferiority < alpha / 2
    if p_superiority < alpha and not math.isnan(difference) and difference != 0.0:
        if difference > 0:
            return "superior"
        return "non-inferior" if non_inferior else "inferior"
    return "non-inferior" if non_inferior else "inconclusive"


def _check_table_args(comparisons: list, level: float, correction: str, labels, margins: list[float]) -> None:
    if correction not in CORRECTIONS:
        close = suggest(str(correction), list(CORRECTIONS))
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(f"Unknown correction {correction!r}.{hint} Known corrections: "
                               f"{', '.join(CORRECTIONS)}.")
    if labels is not None and len(labels) != len(comparisons):
        raise DataError(f"labels has {len(labels)} entries but there are {len(comparisons)} comparisons; pass one "
                        f"label per comparison, in order.")
    if len(margins) != len(comparisons):
        raise DataError(f"margins has {len(margins)} entries but there are {len(comparisons)} comparisons; pass "
                        f"one margin, or one per comparison in order.")
    for i, c in enumerate(comparisons):
        if not math.isnan(c.level) and not math.isclose(c.level, level, abs_tol=1e-9):
            raise DataError(f"comparison {i + 1} was computed at level {c.level} but verdict_table was given "
                            f"level={level}; its CI and the significance threshold would disagree. Recompute the "
                            f"comparison at level={level}, or pass level={c.level}.")


def _as_list(value, n: int) -> list:
    return list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value] * n


def verdict_table(comparisons: Sequence[PairedComparison], *, level: float = 0.95, correction: str = "holm",
                  labels: Sequence[str] | None = None, higher_is_better: bool | Sequence[bool] = True,
                  margin: float | Sequence[float] = 0.0) -> list[dict]:
    """One row per comparison: label, difference, low, high, p_value, p_holm, p_bh, p_corrected, correction,
    margin, p_non_inferiority (raw, one-sided), p_non_inferiority_corrected, verdict, verdict_corrected.

    ``verdict`` comes from each comparison's own CI against its margin; ``verdict_corrected`` from the adjusted
    superiority and non-inferiority p-values (module docstring). ``margin`` and ``higher_is_better`` are one value
    or one per comparison. The family for Holm/BH is the list passed (NaN p-values excluded from it). Every
    comparison must have been computed at ``level`` (a comparison without a level, NaN, is accepted)."""
    level = check_level(level)
    comparisons = list(comparisons)
    margins = [check_margin(m) for m in _as_list(margin, len(comparisons))]
    higher = [bool(h) for h in _as_list(higher_is_better, len(comparisons))]
    _check_table_args(comparisons, level, correction, labels, margins)
    adjust = {"holm": holm, "bh": benjamini_hochberg, "none": lambda p: np.asarray(p, dtype=np.float64)}[correction]
    p = np.array([c.p_value for c in comparisons], dtype=np.float64)
    p_ni = np.array([non_inferiority_p(c, m, h) if m > 0 else math.nan
                     for c, m, h in zip(comparisons, margins, higher)], dtype=np.float64)
    p_holm, p_bh, p_ni_corrected = holm(p), benjamini_hochberg(p), adjust(p_ni)
    p_corrected = {"holm": p_holm, "bh": p_bh, "none": p}[correction]
    rows = []
    for i, c in enumerate(comparisons):
        oriented = c.difference if higher[i] else -c.difference
        rows.append({
            "label": labels[i] if labels is not None else f"comparison {i + 1}",
            "difference": c.difference, "low": c.low, "high": c.high, "p_value": c.p_value,
            "p_holm": float(p_holm[i]), "p_bh": float(p_bh[i]), "margin": margins[i],
            "p_non_inferiority": float(p_ni[i]), "p_non_inferiority_corrected": float(p_ni_corrected[i]),
            "verdict": verdict(c, margin=margins[i] if not math.isnan(c.low) else 0.0, higher_is_better=higher[i]),
            "verdict_corrected": _from_tests(oriented, float(p_corrected[i]), float(p_ni_corrected[i]),
                                             1.0 - level),
            "p_corrected": float(p_corrected[i]), "correction": correction})
    return rows


def summary_line(rows: Sequence[dict], subject: str = "generalist+LoRA", object: str = "specialist",
                 scope: str = "") -> str:
    """E.g. "generalist+LoRA vs specialist, 9 ID comparisons (margin 0.02; corrected by Holm): 1 superior,
    5 non-inferior, 2 inconclusive, 1 inferior" (``scope="ID"``).

    The counts are of the corrected verdicts (``verdict_corrected``) under the correction recorded in the rows of
    ``verdict_table``; an inconclusive comparison is never counted as a win or a tie."""
    rows = list(rows)
    corrections = {r.get("correction", "holm") for r in rows}
    if len(corrections) > 1:
        raise DataError(f"the rows mix corrections {sorted(corrections)}; summarise one verdict_table at a time.")
    correction = corrections.pop() if corrections else "holm"
    counts = {word: sum(r["verdict_corrected"] == word for r in rows) for word in VERDICTS}
    margins = sorted({float(r.get("margin", 0.0)) for r in rows})
    margin = "margin " + "/".join(f"{m:g}" for m in margins) if margins else "margin 0"
    after = "uncorrected" if correction == "none" else f"corrected by {CORRECTIONS[correction]}"
    kind = f"{scope} comparison" if scope else "comparison"
    kind += "" if len(rows) == 1 else "s"
    return (f"{subject} vs {object}, {len(rows)} {kind} ({margin}; {after}): "
            + ", ".join(f"{counts[word]} {word}" for word in VERDICTS))
