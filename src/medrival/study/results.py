"""Reading results back: one row per cell from a store folder."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from medrival.store import ResultStore, require_store


def load_results(store_dir: str | Path) -> pd.DataFrame:
    """The results frame (one row per cell) of the store in ``store_dir``."""
    return ResultStore(require_store(store_dir)).results_frame()
