"""Random-effects pooling across datasets (medrival.stats.pooling): DerSimonian-Laird against statsmodels'
``combine_effects``, REML against an independent root of the REML score equation, both against metafor's
published BCG worked example, and the edge cases (one dataset, bad standard errors)."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from medrival.core.errors import ConfigError, DataError
from medrival.stats.pooling import pool_random_effects, standard_error_from_ci

TOL = 1e-10

# BCG vaccine trials (Colditz et al. 1994; metafor's dat.bcg): tpos, tneg, cpos, cneg per trial.
BCG = np.array([[4, 119, 11, 128], [6, 300, 29, 274], [3, 228, 11, 209], [62, 13536, 248, 12619],
                [33, 5036, 47, 5761], [180, 1361, 372, 1079], [8, 2537, 10, 619], [505, 87886, 499, 87892],
                [29, 7470, 45, 7232], [17, 1699, 65, 1600], [186, 50448, 141, 27197], [5, 2493, 3, 2338],
                [27, 16886, 29, 17825]], dtype=float)


def bcg_log_risk_ratios() -> tuple[np.ndarray, np.ndarray]:
    """metafor's escalc(measure="RR"): log risk ratio and its large-sample variance per trial."""
    a, b, c, d = BCG.T
    return np.log((a / (a + b)) / (c / (c + d))), 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)


def heterogeneous(seed: int, k: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    se = rng.uniform(0.005, 0.03, k)
    return rng.normal(0.02, 0.06, k) + rng.normal(0, se), se


def reml_reference(d: np.ndarray, v: np.ndarray) -> float:
    """REML tau^2 written independently: the root of the REML score
    ``sum w^2 (d - mu)^2 - sum w + sum w^2 / sum w`` (w = 1 / (v + tau^2)) by Brent's method, 0 when the score is
    already negative at 0 (the likelihood then peaks on the boundary)."""
    from scipy.optimize import brentq

    def score(tau2: float) -> float:
        w = 1 / (v + tau2)
        mu = np.sum(w * d) / np.sum(w)
        return float(np.sum(w ** 2 * (d - mu) ** 2) - np.sum(w) + np.sum(w ** 2) / np.sum(w))

    if score(0.0) <= 0:
        return 0.0
    upper = 1.0
    while score(upper) > 0:
        upper *= 10
    return brentq(score, 0.0, upper, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)


@pytest.mark.parametrize("seed", range(5))
def test_pooling_dl_matches_statsmodels_combine_effects(seed):
    from scipy import stats
    from statsmodels.stats.meta_analysis import combine_effects

    d, se = heterogeneous(seed)
    reference = combine_effects(d, se ** 2, method_re="dl")
    assert reference.tau2 > 0  # statsmodels does not truncate tau^2 at 0; these data need no truncation
    pooled = pool_random_effects(d, se, method="dl")
    low, high = reference.conf_int(alpha=0.05, use_t=False)[1]
    z = reference.mean_effect_re / reference.sd_eff_w_re
    expected = {"estimate": reference.mean_effect_re, "standard_error": reference.sd_eff_w_re, "low": low,
                "high": high, "tau2": reference.tau2, "q": reference.q, "i2": reference.i2, "z": z,
                "p_value": 2 * stats.norm.sf(abs(z)), "q_p_value": reference.test_homogeneity().pvalue}
    for name, value in expected.items():
        assert getattr(pooled, name) == pytest.approx(value, rel=TOL, abs=TOL), name
    assert pooled.k == len(d) and pooled.method == "dl" and pooled.level == 0.95


def test_pooling_dl_truncates_tau2_at_zero_to_the_fixed_effect_result():
    from statsmodels.stats.meta_analysis import combine_effects

    d = np.array([0.010, 0.012, 0.011, 0.009])  # far less spread than their standard errors allow
    se = np.array([0.02, 0.03, 0.025, 0.02])
    with np.errstate(invalid="ignore"):  # statsmodels takes the square root of its negative tau^2 variance
        reference = combine_effects(d, se ** 2, method_re="dl")
    assert reference.tau2 < 0  # the untruncated moment estimate
    pooled = pool_random_effects(d, se, method="dl")
    assert pooled.tau2 == 0.0 and pooled.i2 == 0.0
    assert pooled.estimate == pytest.approx(reference.mean_effect_fe, rel=TOL, abs=TOL)
    assert pooled.standard_error == pytest.approx(reference.sd_eff_w_fe, rel=TOL, abs=TOL)
    assert pool_random_effects(d, se, method="reml").tau2 == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_pooling_reml_matches_an_independent_root_of_the_reml_score(seed):
    from scipy.stats import norm

    d, se = heterogeneous(seed)
    tau2 = reml_reference(d, se ** 2)
    w = 1 / (se ** 2 + tau2)
    estimate, standard_error = np.sum(w * d) / np.sum(w), 1 / math.sqrt(np.sum(w))
    pooled = pool_random_effects(d, se, method="reml", level=0.9)
    z = norm.ppf(0.95)
    assert pooled.tau2 == pytest.approx(tau2, rel=TOL, abs=TOL)
    assert pooled.estimate == pytest.approx(estimate, rel=TOL, abs=TOL)
    assert pooled.standard_error == pytest.approx(standard_error, rel=TOL, abs=TOL)
    assert pooled.low == pytest.approx(estimate - z * standard_error, rel=TOL, abs=TOL)
    assert pooled.high == pytest.approx(estimate + z * standard_error, rel=TOL, abs=TOL)
    dl = pool_random_effects(d, se, method="dl")
    assert (pooled.q, pooled.i2, pooled.k) == (dl.q, dl.i2, dl.k)  # data properties, not the estimator's


def test_pooling_reproduces_metafor_bcg_worked_example():
    """Published numbers: metafor's rma() on dat.bcg with measure "RR" (Viechtbauer 2010, J Stat Softw 36(3),
    section 3; metafor's rma.uni help page): REML tau^2 0.3132, estimate -0.7145, se 0.1798, z -3.9744, CI
    [-1.0669, -0.3622], Q(df = 12) = 152.2330; DL tau^2 0.3088, estimate -0.7141, se 0.1787, CI [-1.0644, -0.3638].
    metafor prints 4 decimals, so the check is to half a unit in the last one."""
    yi, vi = bcg_log_risk_ratios()
    reml = pool_random_effects(yi, np.sqrt(vi), method="reml")
    dl = pool_random_effects(yi, np.sqrt(vi), method="dl")
    printed = 5e-5
    for got, expected in ((reml.tau2, 0.3132), (reml.estimate, -0.7145), (reml.standard_error, 0.1798),
                          (reml.z, -3.9744), (reml.low, -1.0669), (reml.high, -0.3622), (reml.q, 152.2330),
                          (dl.tau2, 0.3088), (dl.estimate, -0.7141), (dl.standard_error, 0.1787),
                          (dl.low, -1.0644), (dl.high, -0.3638)):
        assert abs(got - expected) <= printed, (got, expected)
    assert reml.k == 13 and reml.p_value < 1e-4 and reml.q_p_value < 1e-4


def test_pooling_single_dataset_returns_its_own_estimate_and_interval():
    pooled = pool_random_effects([0.04], [0.02], level=0.95)
    z = 1.959963984540054
    assert (pooled.estimate, pooled.standard_error, pooled.k) == (0.04, 0.02, 1)
    assert pooled.low == pytest.approx(0.04 - z * 0.02, abs=1e-12)
    assert pooled.high == pytest.approx(0.04 + z * 0.02, abs=1e-12)
    assert math.isnan(pooled.i2) and math.isnan(pooled.tau2) and math.isnan(pooled.q_p_value) and pooled.q == 0.0
    assert pooled.p_value == pytest.approx(2 * (1 - 0.9772498680518208), abs=1e-12)  # z = 2
    assert pool_random_effects([0.04], [0.02], method="reml").estimate == 0.04


@pytest.mark.parametrize("se", [[0.02, 0.0], [0.02, -0.01], [0.02, float("nan")], [0.02, float("inf")]])
def test_pooling_rejects_non_finite_or_non_positive_standard_errors(se):
    with pytest.raises(DataError, match=r"position\(s\) \[1\].*expected finite standard errors > 0.*leave that"):
        pool_random_effects([0.1, 0.2], se)


def test_pooling_rejects_bad_differences_shapes_methods_and_levels():
    with pytest.raises(DataError, match="differences has NaN/inf"):
        pool_random_effects([0.1, float("nan")], [0.1, 0.1])
    with pytest.raises(DataError, match="same length"):
        pool_random_effects([0.1, 0.2], [0.1])
    with pytest.raises(DataError, match="at least 1"):
        pool_random_effects([], [])
    with pytest.raises(ConfigError, match="dl, reml"):
        pool_random_effects([0.1, 0.2], [0.1, 0.1], method="pm")
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        pool_random_effects([0.1, 0.2], [0.1, 0.1], level=95)


def test_pooling_standard_error_from_ci_inverts_a_wald_interval():
    z = 1.959963984540054
    assert standard_error_from_ci(0.1 - z * 0.03, 0.1 + z * 0.03, 0.95) == pytest.approx(0.03, rel=1e-12)
    assert standard_error_from_ci(-1.0, 1.0, 0.9) == pytest.approx(1 / 1.6448536269514722, rel=1e-12)
    for low, high in ((0.2, 0.2), (0.3, 0.1), (float("nan"), 0.1), (0.0, float("inf"))):
        with pytest.raises(DataError, match="low < high"):
            standard_error_from_ci(low, high)
    # a stored bootstrap row, end to end: CIs -> SEs -> pooled
    rows = [(0.05, 0.01, 0.09), (0.02, -0.03, 0.07), (0.08, 0.04, 0.12)]
    pooled = pool_random_effects([r[0] for r in rows], [standard_error_from_ci(r[1], r[2]) for r in rows])
    assert pooled.k == 3 and pooled.low < pooled.estimate < pooled.high


def test_pooling_module_imports_without_torch_or_scipy_stats():
    code = ("import sys, medrival.stats.pooling; "
            "print(sorted(m for m in ('torch', 'scipy.stats') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
