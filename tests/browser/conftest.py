"""Headless Debian chromium driven by Playwright, and helpers to sign in and take screenshots.

`playwright install` cannot download browsers here: the tests use the system's
chromium (``apt-get install chromium``; ``.ci/run`` installs it when missing).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = os.environ.get("SELFHEAL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
LAPTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless chromium for one test."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"chromium is required for the browser tests and is not at {CHROMIUM} "
            "(apt-get install -y chromium; .ci/run does this)"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


class PageErrors(list[str]):
    """Uncaught exceptions in the page; a test ends by asserting there were none."""


async def new_page(browser: Browser, viewport: dict[str, int] = LAPTOP) -> tuple[Page, PageErrors]:
    """A page that records its uncaught errors."""
    context = await browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = await context.new_page()
    page.set_default_timeout(10_000)
    errors = PageErrors()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


async def sign_in(page: Page, base_url: str, key: str) -> None:
    """Open the dashboard and sign in through its form."""
    await page.goto(f"{base_url}/dashboard")
    await page.fill("#api-key", key)
    await page.click("#signin-button")


async def screenshot(page: Page, name: str, *, theme: str | None = None) -> Path:
    """Write artifacts/screenshots/NAME.png (optionally in a given theme)."""
    if theme is not None:
        await page.evaluate("(t) => { document.documentElement.dataset.theme = t; }", theme)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.wait_for_timeout(150)  # one frame after the last change
    await page.screenshot(path=str(path))
    return path
