"""Headless Chromium for tests: Debian's `/usr/bin/chromium`, driven by Playwright.

Never `playwright install`: the system browser is used through `executable_path`. Without
it (or without the `playwright` package) a test is skipped loudly on a laptop and fails on
CI (`CI=true`); `scripts/install-chromium.sh` installs it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres import in_ci

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "dashboard"
"""Screenshots land here (and in the test's tmp_path) so that people can look at them."""


def chromium_path() -> str | None:
    """The system Chromium, if installed."""
    for name in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(name).exists():
            return name
    return shutil.which("chromium")


def _missing(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (required on CI: run scripts/install-chromium.sh)",
                    pytrace=False)
    pytest.skip(f"!!! BROWSER TESTS SKIPPED: {reason}; run scripts/install-chromium.sh")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (Playwright `Browser`) for the module."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    path = chromium_path()
    if path is None:
        _missing("chromium is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    """Save a full-page screenshot in tmp_path and test-output/dashboard/; returns it."""
    target = tmp_path / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(target, OUTPUT / target.name)
    return target
