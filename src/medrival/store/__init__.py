"""Results store: SQLite rows per cell plus per-sample prediction Parquet files, crash-safe and resumable."""
from medrival.store.results import SCHEMA_VERSION, CellRecord, ResultStore, StorePaths, require_store, utc_now

__all__ = ["SCHEMA_VERSION", "CellRecord", "ResultStore", "StorePaths", "require_store", "utc_now"]
