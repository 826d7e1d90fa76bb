"""Results store: SQLite rows per cell plus per-sample prediction Parquet files, crash-safe and resumable."""
from medrival.store.files import FileDigest
from medrival.store.integrity import DamagedStoreError
from medrival.store.leases import Lease, LeaseKeeper, new_owner, owner_is_dead
from medrival.store.results import (
    RERUN_COMMAND,
    SCHEMA_VERSION,
    CellRecord,
    OutdatedResultsWarning,
    ResultStore,
    StorePaths,
    is_outdated_vqa,
    open_intact_store,
    outdated_vqa_note,
    require_store,
    utc_now,
    warn_outdated_vqa,
)

__all__ = ["RERUN_COMMAND", "SCHEMA_VERSION", "CellRecord", "DamagedStoreError", "FileDigest", "Lease",
           "LeaseKeeper", "OutdatedResultsWarning", "ResultStore", "StorePaths", "is_outdated_vqa", "new_owner",
           "open_intact_store", "outdated_vqa_note", "owner_is_dead", "require_store", "utc_now", "warn_outdated_vqa"]
