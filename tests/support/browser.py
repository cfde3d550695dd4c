"""A real headless Chromium for page tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

Playwright's own browser downloads are never used. Without the system browser the test is
skipped with the reason, unless ``PLACEWATCH_REQUIRE_BROWSER=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # containers and root CI runners have no user namespaces for the sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    reason = (
        f"{CHROMIUM} not found: install Debian's chromium package (apt-get install chromium) "
        "to run the browser tests"
    )
    if os.environ.get("PLACEWATCH_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " (PLACEWATCH_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Browser]:
    executable = require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()
