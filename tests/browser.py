"""Headless Chromium for report tests, driven by selenium through Debian's ``chromium-driver``: find both, start
a driver that can reach nothing but the page on disk, and read the browser's console log."""
from __future__ import annotations

import shutil

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)
WIDTH, HEIGHT = 1300, 1000  # a laptop screen: the "first screen" of the report


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def find_driver() -> str | None:
    return next((path for path in map(shutil.which, DRIVERS) if path), None)


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    if find_browser() is None or find_driver() is None:
        return ("no Chromium and chromedriver here: install Debian's chromium and chromium-driver "
                "(apt-get install chromium chromium-driver, or `make browser` as root) to run the browser tests")
    return None


def start_driver():
    """A headless Chromium under selenium: no sandbox (containers run as root), every fetch sent to a proxy on a
    closed port (so any network use fails and is logged), the console log kept at every level."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = find_browser()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                     f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=find_driver()), options=options)
    driver.set_window_size(WIDTH, HEIGHT)
    return driver


def severe_messages(driver) -> list[str]:
    """The console messages logged at SEVERE (script errors, blocked or failed loads) since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
