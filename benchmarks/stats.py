#!/usr/bin/env python
"""Speed of the statistics: paired bootstrap (B = 10,000 on n = 10,000 items), DeLong (n = 10,000), and a Holm
family of 300 paired AUROC bootstraps at n = 10,000 (B = 2,000, the default).

    .venv/bin/python benchmarks/stats.py

All on seeded synthetic binary data (two correlated score vectors); the bootstrap is run twice to show that it
gives identical results run to run. Last line: JSON with bootstrap_s and delong_s (target: bootstrap <= 2 s on 2
cores), the bootstrap's difference and CI, whether the repeat was identical, and family_300_s (target <= 30 s on
2 cores; 30 test sets of ~10,000 items, 10 comparisons each: the first on a test set draws its resamples, the
others re-use them, timed per comparison as family_cold_s_per_comparison / family_warm_s_per_comparison) with
how many of the 300 comparisons (true effects of ~5.5 SEs) are significant after Holm (family_holm_significant;
the empirical p alone, floor 2/(B + 1), could give none) and the largest p.
"""
from __future__ import annotations

import json
import os
import platform


def main() -> None:
    from medrival.stats.bootstrap import bootstrap_speed, family_speed
    from medrival.stats.delong import delong_speed

    first = bootstrap_speed(n_items=10_000, n_resamples=10_000, seed=0)
    second = bootstrap_speed(n_items=10_000, n_resamples=10_000, seed=0)
    delong = min((delong_speed(n_items=10_000, seed=0) for _ in range(3)), key=lambda r: r["delong_s"])
    family = family_speed(n_comparisons=300, n_items=10_000, n_resamples=2000, seed=0)
    identical = all(first[k] == second[k] for k in ("difference", "low", "high", "p_value"))
    result = {"bootstrap_s": round(min(first["bootstrap_s"], second["bootstrap_s"]), 3),
              "delong_s": round(delong["delong_s"], 4), "difference": first["difference"], "low": first["low"],
              "high": first["high"], "identical_run_to_run": identical, "n_items": 10_000, "n_resamples": 10_000,
              "family_300_s": family["family_s"], "family_n_resamples": family["n_resamples"],
              "family_test_sets": family["test_sets"], "family_cold_s_per_comparison": family["cold_s_per_comparison"],
              "family_warm_s_per_comparison": family["warm_s_per_comparison"],
              "family_holm_significant": family["holm_significant"], "family_max_p": family["max_p"],
              "family_median_effect_se": family["median_effect_se"],
              "machine": f"{platform.machine()} {os.cpu_count()} cpus", "python": platform.python_version()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
