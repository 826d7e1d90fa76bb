"""The built-in offline demo study (``medrival demo``)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from medrival.study.runner import StudyRun, run_study
from medrival.study.spec import StudySpec, load_study

DEMO_STUDY_FILE = Path(__file__).parent / "demo.yaml"


def demo_spec() -> StudySpec:
    return load_study(DEMO_STUDY_FILE)


def run_demo(out_dir: str | Path = "medrival-demo", progress: Callable[[str], None] = lambda _: None,
             jobs: int | str | None = None) -> StudyRun:
    """Run the demo study into ``out_dir``; ``jobs`` overrides its ``jobs: auto`` (1: everything in this process)."""
    return run_study(demo_spec(), out_dir, progress=progress, jobs=jobs)
