"""Results store: SQLite rows per cell plus per-sample prediction Parquet files, crash-safe and resumable."""
from medrival.store.results import (
    RERUN_COMMAND,
    SCHEMA_VERSION,
    CellRecord,
    OutdatedResultsWarning,
    ResultStore,
    StorePaths,
    is_outdated_vqa,
    outdated_vqa_note,
    require_store,
    utc_now,
    warn_outdated_vqa,
)

__all__ = ["RERUN_COMMAND", "SCHEMA_VERSION", "CellRecord", "OutdatedResultsWarning", "ResultStore", "StorePaths",
           "is_outdated_vqa", "outdated_vqa_note", "require_store", "utc_now", "warn_outdated_vqa"]
