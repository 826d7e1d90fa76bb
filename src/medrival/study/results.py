"""Reading results back: one row per cell from a store folder."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from medrival.store import ResultStore, require_store, warn_outdated_vqa


def load_results(store_dir: str | Path) -> pd.DataFrame:
    """The results frame (one row per cell) of the store in ``store_dir``.

    VQA cells scored by earlier VQA rules (old metric names such as ``token_f1``, normalisation version "1") are
    left out, with one ``medrival.store.OutdatedResultsWarning`` saying how many and the command that re-runs
    them (``medrival run STUDY.yaml --out DIR``); ``ResultStore.results_frame(include_outdated=True)`` has them."""
    store = ResultStore(require_store(store_dir), read_only=True).require_intact()  # refuse damaged cells
    warn_outdated_vqa(store.records(), stacklevel=2)
    return store.results_frame()
