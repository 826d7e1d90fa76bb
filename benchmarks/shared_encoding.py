#!/usr/bin/env python
"""Shared encoding: one (model, dataset) with zero-shot, kNN, linear probe and Tip-Adapter x K in {1,2,4,8,16}
x 3 draws must encode each distinct image once, and a second study sharing the feature cache must encode none.

    .venv/bin/python benchmarks/shared_encoding.py [--model demo-generalist-clip] [--dataset demo-xray]

Last line: JSON with encoded_images, unique_images (distinct images of train + val + test), n_cells,
second_run_encoded_images, wall_s and second_wall_s.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

from common import machine

STUDY = """
name: shared-encoding
models: [{model}]
datasets: [{dataset}]
methods: [zero_shot, knn, linear_probe, tip_adapter]
fewshot: {{shots: [1, 2, 4, 8, 16], draws: 3}}
feature_cache: {cache}
"""


def unique_images(dataset: str) -> int:
    from medrival.data.catalog import load_dataset

    digests = set()
    for split in ("train", "val", "test"):
        digests.update(hashlib.blake2b(image.tobytes(), digest_size=16).digest()
                       for image in load_dataset(dataset, split).images)
    return len(digests)


def main() -> None:
    from medrival.study.runner import run_study
    from medrival.study.spec import parse_study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo-generalist-clip")
    parser.add_argument("--dataset", default="demo-xray")
    arguments = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="medrival-shared-"))
    spec = parse_study(STUDY.format(model=arguments.model, dataset=arguments.dataset, cache=scratch / "features"))

    started = time.perf_counter()
    first = run_study(spec, scratch / "first")
    wall_s = time.perf_counter() - started
    started = time.perf_counter()
    second = run_study(spec, scratch / "second")  # a new store: every cell runs again, features come from disk
    second_wall_s = time.perf_counter() - started

    result = {"encoded_images": first.timings["encoded_images"], "unique_images": unique_images(arguments.dataset),
              "n_cells": len(first.cells), "n_failed": len(first.failed),
              "second_run_encoded_images": second.timings["encoded_images"],
              "wall_s": round(wall_s, 2), "second_wall_s": round(second_wall_s, 2),
              "model": arguments.model, "dataset": arguments.dataset, **machine()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
