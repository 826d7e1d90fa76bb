"""Reading results back: one row per cell from a store folder."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from medrival.core.errors import MedrivalError
from medrival.store import ResultStore


def require_store(store_dir: str | Path) -> Path:
    """``store_dir`` when it holds a medrival store, else an error saying which folder to pass."""
    root = Path(store_dir)
    if not (root / "results.sqlite").is_file():
        raise MedrivalError(f"No medrival store in {root} (no results.sqlite). Pass the folder given to "
                            f"`medrival run --out` or `medrival demo --out`.")
    return root


def load_results(store_dir: str | Path) -> pd.DataFrame:
    """The results frame (one row per cell) of the store in ``store_dir``."""
    return ResultStore(require_store(store_dir)).results_frame()
