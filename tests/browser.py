"""Headless Chromium for report tests: find the browser, load a page from disk, save a screenshot."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Lines Chromium logs for problems of the page itself (a script error, a resource it could not load).
PAGE_PROBLEMS = ("Uncaught", "Failed to load resource", "ERR_", "Refused to", ":CONSOLE(")


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def screenshot(page: Path, png: Path, width: int = 1300, height: int = 3000) -> tuple[str, str]:
    """Load ``page`` from disk in headless Chromium (network off), save ``png``; returns (DOM, browser log)."""
    browser = find_browser()
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
              "--proxy-server=127.0.0.1:9", "--virtual-time-budget=3000"]  # any fetch would fail loudly
    shot = subprocess.run([*common, f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    return dom.stdout, shot.stderr + dom.stderr
