"""Headless Chromium driven by Selenium, for the browser test and the README screenshot.

Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver): named
explicitly, so Selenium never tries to download a browser or driver of its own. Selenium is a
test dependency; it is imported only here.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)
WINDOW = (1280, 900)
#: Flags that work on a root CI machine without a display or GPU; no network beyond the page.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is missing."""
    browser = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    driver = next((p for p in map(shutil.which, DRIVER_NAMES) if p), None)
    return (browser, driver) if browser and driver else None


def start_chromium(window: tuple[int, int] = WINDOW, profile: Path | None = None) -> Any:
    """A headless Chromium WebDriver with a fresh profile; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if found is None:
        raise RuntimeError("Chromium or chromedriver not found (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={window[0]},{window[1]}")
    options.add_argument(f"--user-data-dir={profile or tempfile.mkdtemp(prefix='fmnist-chromium-')}")
    return webdriver.Chrome(options=options, service=Service(executable_path=found[1]))
