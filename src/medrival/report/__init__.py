"""Reports from a results frame: a rich terminal table, and Markdown + CSV files."""
from medrival.report.tables import (
    display_columns,
    is_synthetic,
    metric_columns,
    results_table,
    summary_line,
    to_markdown,
    write_reports,
)

__all__ = ["display_columns", "is_synthetic", "metric_columns", "results_table", "summary_line",
           "to_markdown", "write_reports"]
