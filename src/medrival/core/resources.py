"""Peak memory of a block of work: process RSS sampled by a background thread, and CUDA's own peak counter.

RSS is sampled (every ``interval_s``) because the operating system's high-water mark (``ru_maxrss``) covers the
whole process lifetime, so it could not tell one cell of a study from the one before it.
"""
from __future__ import annotations

import sys
import threading

_MB = 1024.0 * 1024.0


def _rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _cuda_ready():
    """torch when it is already imported and CUDA is initialised; never imports torch itself."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch


class PeakMemory:
    """``with PeakMemory() as peak: ...`` then ``peak.as_dict()``: peak RSS (MB) and CUDA max allocated (MB)."""

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        self.peak_rss = 0
        self.start_rss = 0
        self.cuda_peak: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_rss = max(self.peak_rss, _rss_bytes())

    def __enter__(self) -> "PeakMemory":
        self.start_rss = self.peak_rss = _rss_bytes()
        torch = _cuda_ready()
        if torch is not None:
            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._sample, name="medrival-peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_rss = max(self.peak_rss, _rss_bytes())
        torch = _cuda_ready()  # CUDA may have been initialised inside the block
        if torch is not None:
            self.cuda_peak = int(torch.cuda.max_memory_allocated())

    def as_dict(self) -> dict[str, float]:
        result = {"peak_rss_mb": round(self.peak_rss / _MB, 1),
                  "rss_growth_mb": round((self.peak_rss - self.start_rss) / _MB, 1)}
        if self.cuda_peak is not None:
            result["cuda_max_allocated_mb"] = round(self.cuda_peak / _MB, 1)
        return result

