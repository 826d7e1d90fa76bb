#!/usr/bin/env python
"""Speed of the statistics: paired bootstrap (B = 10,000 on n = 10,000 items) and DeLong (n = 10,000).

    .venv/bin/python benchmarks/stats.py

Both on seeded synthetic binary data (two correlated score vectors); the bootstrap is run twice to show that it
gives identical results run to run. Last line: JSON with bootstrap_s and delong_s (target: bootstrap <= 2 s on 2
cores), the bootstrap's difference and CI, and whether the repeat was identical.
"""
from __future__ import annotations

import json
import os
import platform


def main() -> None:
    from medrival.stats.bootstrap import bootstrap_speed
    from medrival.stats.delong import delong_speed

    first = bootstrap_speed(n_items=10_000, n_resamples=10_000, seed=0)
    second = bootstrap_speed(n_items=10_000, n_resamples=10_000, seed=0)
    delong = min((delong_speed(n_items=10_000, seed=0) for _ in range(3)), key=lambda r: r["delong_s"])
    identical = all(first[k] == second[k] for k in ("difference", "low", "high", "p_value"))
    result = {"bootstrap_s": round(min(first["bootstrap_s"], second["bootstrap_s"]), 3),
              "delong_s": round(delong["delong_s"], 4), "difference": first["difference"], "low": first["low"],
              "high": first["high"], "identical_run_to_run": identical, "n_items": 10_000, "n_resamples": 10_000,
              "machine": f"{platform.machine()} {os.cpu_count()} cpus", "python": platform.python_version()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
