"""Win / tie / loss verdicts for paired comparisons A - B, tables of them, and the one-line summary.

Following Jeong et al. (2024), who found that medically adapted models rarely beat their generalist base once
the uncertainty is accounted for, a model "wins" only when the confidence interval of the difference excludes
zero: win when the CI lies above the margin, loss when it lies below minus the margin, tie otherwise. Higher
metric values are taken as better (AUROC, accuracy, F1) unless ``higher_is_better=False`` (Brier, ECE, the VQA
``undecided_rate``): then the verdicts are mirrored, so "win" always means "A is better". ``higher_is_better(name)``
says which way a named metric goes.

Two verdicts are reported per comparison in ``verdict_table``:

* ``verdict`` -- from the comparison's own (uncorrected) CI, as ``verdict()``;
* ``verdict_corrected`` -- controls the family of comparisons. A CI at the Holm-adjusted level cannot be
  re-computed from a stored comparison, so this verdict uses the adjusted p-value instead: win (loss) when the
  adjusted p-value (Holm, Benjamini-Hochberg or none, per ``correction``) is < 1 - level and the difference is
  > 0 (< 0); tie otherwise, including a NaN p-value or a difference of exactly 0.

References:
    D. P. Jeong, S. Garg, Z. C. Lipton, M. Oberst (2024). Limited impact of medical adaptation of large language
        and vision-language models. EMNLP 2024.
    S. Holm (1979); Y. Benjamini, Y. Hochberg (1995) -- see ``medrival.stats.multiple``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from medrival.core.errors import DataError, UnknownNameError
from medrival.core.registry import suggest
from medrival.stats.delong import check_level
from medrival.stats.multiple import benjamini_hochberg, holm
from medrival.stats.types import PairedComparison

CORRECTIONS = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no correction"}


_MIRROR = {"win": "loss", "loss": "win", "tie": "tie"}


def higher_is_better(metric: str) -> bool:
    """False for metrics where lower is better: Brier/ECE-like (``medrival.stats.weighted.LOWER_IS_BETTER``) and
    the VQA ones of ``medrival.metrics.vqa.LOWER_IS_BETTER`` (``undecided_rate``); True otherwise."""
    from medrival.metrics.vqa import LOWER_IS_BETTER as VQA_LOWER_IS_BETTER
    from medrival.stats.weighted import LOWER_IS_BETTER

    return metric not in LOWER_IS_BETTER and metric not in VQA_LOWER_IS_BETTER


def _from_p(difference: float, p_value: float, alpha: float) -> str:
    """Win/loss when ``p_value < alpha`` (NaN-safe: NaN is not significant) and the sign decides; else tie."""
    if not (p_value < alpha) or math.isnan(difference) or difference == 0.0:
        return "tie"
    return "win" if difference > 0 else "loss"


def _oriented(word: str, higher_is_better: bool) -> str:
    return word if higher_is_better else _MIRROR[word]


def verdict(comparison: PairedComparison, *, margin: float = 0.0, higher_is_better: bool = True) -> str:
    """The verdict of ``comparison`` (see ``_raw_verdict``), mirrored when lower metric values are better."""
    return _oriented(_raw_verdict(comparison, margin), higher_is_better)


def _raw_verdict(comparison: PairedComparison, margin: float) -> str:
    """Return "win" if the CI of A - B lies above ``margin``, "loss" if it lies below ``-margin``, else "tie".

    A comparison without a CI (the permutation test reports NaN bounds) falls back to its p-value: win/loss when
    p < 1 - comparison.level and the sign of the difference decides, tie otherwise; a non-zero ``margin`` then
    raises ``DataError``, since a margin cannot be judged without an interval.
    """
    if isinstance(margin, bool) or not isinstance(margin, (int, float, np.integer, np.floating)) \
            or not math.isfinite(margin) or margin < 0:
        raise DataError(f"margin must be a finite number >= 0 (a difference that counts as practically zero), "
                        f"got {margin!r}.")
    low, high = comparison.low, comparison.high
    if math.isnan(low) or math.isnan(high):
        if margin != 0:
            raise DataError(f"this {comparison.method!r} comparison has no confidence interval, so a margin of "
                            f"{margin} cannot be judged; use margin=0 (verdict from the p-value) or a CI method "
                            f"such as the paired bootstrap.")
        return _from_p(comparison.difference, comparison.p_value, 1.0 - comparison.level)
    if low > margin:
        return "win"
    if high < -margin:
        return "loss"
    return "tie"


def _check_table_args(comparisons: list, level: float, correction: str, labels) -> None:
    if correction not in CORRECTIONS:
        close = suggest(str(correction), list(CORRECTIONS))
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(f"Unknown correction {correction!r}.{hint} Known corrections: "
                               f"{', '.join(CORRECTIONS)}.")
    if labels is not None and len(labels) != len(comparisons):
        raise DataError(f"labels has {len(labels)} entries but there are {len(comparisons)} comparisons; pass one "
                        f"label per comparison, in order.")
    for i, c in enumerate(comparisons):
        if not math.isnan(c.level) and not math.isclose(c.level, level, abs_tol=1e-9):
            raise DataError(f"comparison {i + 1} was computed at level {c.level} but verdict_table was given "
                            f"level={level}; its CI and the significance threshold would disagree. Recompute the "
                            f"comparison at level={level}, or pass level={c.level}.")


def verdict_table(comparisons: Sequence[PairedComparison], *, level: float = 0.95, correction: str = "holm",
                  labels: Sequence[str] | None = None, higher_is_better: bool = True) -> list[dict]:
    """One row per comparison: label, difference, low, high, p_value, p_holm, p_bh, verdict, verdict_corrected,
    plus p_corrected (the adjusted p-value used, per ``correction``) and correction.

    ``verdict`` comes from each comparison's own CI (``verdict()``, margin 0). ``verdict_corrected`` is win/loss
    only if the adjusted p-value per ``correction`` ("holm", "bh" or "none") is < 1 - ``level`` -- the sign of the
    difference then decides -- and tie otherwise; see the module docstring for why it is not a corrected CI.
    The family for Holm/BH is the list passed (NaN p-values excluded from it). Every comparison must have been
    computed at ``level`` (a comparison without a level, NaN, is accepted). With ``higher_is_better=False``
    (Brier) both verdicts are mirrored: "win" means A's metric is significantly *lower*.
    """
    level = check_level(level)
    comparisons = list(comparisons)
    _check_table_args(comparisons, level, correction, labels)
    p = np.array([c.p_value for c in comparisons], dtype=np.float64)
    p_holm, p_bh = holm(p), benjamini_hochberg(p)
    p_corrected = {"holm": p_holm, "bh": p_bh, "none": p}[correction]
    rows = []
    for i, c in enumerate(comparisons):
        rows.append({
            "label": labels[i] if labels is not None else f"comparison {i + 1}",
            "difference": c.difference, "low": c.low, "high": c.high, "p_value": c.p_value,
            "p_holm": float(p_holm[i]), "p_bh": float(p_bh[i]),
            "verdict": verdict(c, higher_is_better=higher_is_better),
            "verdict_corrected": _oriented(_from_p(c.difference, float(p_corrected[i]), 1.0 - level),
                                           higher_is_better),
            "p_corrected": float(p_corrected[i]), "correction": correction})
    return rows


def _count(n: int, word: str) -> str:
    plural = {"win": "wins", "tie": "ties", "loss": "losses"}[word]
    return f"{n} {word if n == 1 else plural}"


def summary_line(rows: Sequence[dict], subject: str = "generalist+LoRA", object: str = "specialist",
                 scope: str = "") -> str:
    """E.g. "generalist+LoRA ≥ specialist in 7/9 ID comparisons (2 wins, 5 ties, 2 losses); 2 significant after
    Holm" (``scope="ID"``).

    "≥" counts the comparisons whose (uncorrected, CI) verdict is a win or a tie; "significant" counts those
    whose corrected verdict is a win or a loss, under the correction recorded in the rows of ``verdict_table``.
    """
    rows = list(rows)
    counts = {word: sum(r["verdict"] == word for r in rows) for word in ("win", "tie", "loss")}
    corrections = {r.get("correction", "holm") for r in rows}
    if len(corrections) > 1:
        raise DataError(f"the rows mix corrections {sorted(corrections)}; summarise one verdict_table at a time.")
    correction = corrections.pop() if corrections else "holm"
    significant = sum(r["verdict_corrected"] != "tie" for r in rows)
    after = "without correction" if correction == "none" else f"after {CORRECTIONS[correction]}"
    kind = f"{scope} comparisons" if scope else "comparisons"
    return (f"{subject} ≥ {object} in {counts['win'] + counts['tie']}/{len(rows)} {kind} "
            f"({_count(counts['win'], 'win')}, {_count(counts['tie'], 'tie')}, {_count(counts['loss'], 'loss')}); "
            f"{significant} significant {after}")
