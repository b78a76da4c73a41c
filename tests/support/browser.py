"""A headless Debian Chromium driven by Selenium, for the browser tests of the portal and the
integrators' pages.

Chromium and ChromeDriver come from Debian's packages (``chromium``, ``chromium-driver``);
nothing here downloads a browser. Selenium Manager is bypassed by naming the driver's path.
The flags keep Chromium off the network: it only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
MISSING = "chromium or chromium-driver is not installed (apt-get install chromium chromium-driver)"

FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage",
    "--window-size=1280,900", "--lang=vi",
)


def browser_available() -> bool:
    """Both the browser and its driver are on this machine."""
    return bool(shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER))


def new_driver(*, width: int = 1280, height: int = 900, language: str = "vi"):
    """A fresh headless Chromium with an empty profile. The caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--lang={language}")
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}")
    # the console log (driver.get_log("browser")): Content-Security-Policy violations show there
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture
def browser() -> Iterator:
    """One Chromium per test; the test fails (it is not skipped) when Chromium is missing,
    since `.ci/run` installs it."""
    if not browser_available():
        pytest.fail(MISSING)
    driver = new_driver()
    try:
        yield driver
    finally:
        driver.quit()
