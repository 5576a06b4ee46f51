"""Debian's Chromium driven by Playwright (its executable path; never ``playwright install``).

:class:`Console` is one person's browser: its own profile (a fresh ``--user-data-dir``), the
login through the real form, screenshots into ``.data/test/screenshots/``, and the
``Server-Timing`` figure of every page it opened.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Page, Playwright, Response

from synapseops.settings import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = PROJECT_ROOT / ".data" / "test" / "screenshots"
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass
class Console:
    base: str
    context: BrowserContext
    page: Page
    timings: dict[str, float] = field(default_factory=dict)

    def open(self, path: str) -> Response:
        response = self.page.goto(f"{self.base}{path}")
        assert response is not None, path
        timing = response.headers.get("server-timing", "")
        if "dur=" in timing:
            self.timings[path] = float(timing.split("dur=")[1].split(",")[0])
        return response

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        # From the top: a full-page shot keeps the sticky header (and a table's sticky head)
        # where the last scroll left them, in the middle of the picture, over the content.
        self.page.evaluate("window.scrollTo(0, 0)")
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def login(self, user: str, password: str) -> None:
        self.open("/login")
        self.page.fill("input[name=username]", user)
        self.page.fill("input[name=password]", password)
        with self.page.expect_navigation():
            self.page.click("button[type=submit]")

    def confirm(self) -> None:
        """Press the confirm button of the console's dialog."""
        self.page.locator("dialog#confirm [data-yes]").click()

    def api(self, method: str, path: str, body: Any = None, csrf: bool = True) -> dict[str, Any]:
        """A fetch from the page, as its script does (the session cookie; the CSRF header)."""
        result: dict[str, Any] = self.page.evaluate(
            """async ([method, path, body, csrf]) => {
                const headers = {"Content-Type": "application/json"};
                const meta = document.querySelector('meta[name="csrf-token"]');
                if (csrf) headers["X-CSRF-Token"] = meta.content;
                const sent = body === null ? undefined : JSON.stringify(body);
                const init = {method, headers, credentials: "same-origin", body: sent};
                const r = await fetch(path, init);
                return {status: r.status, body: await r.text()};
            }""",
            [method, path, body, csrf],
        )
        return result


@contextmanager
def console_for(
    playwright: Playwright, base: str, viewport: dict[str, int] = LAPTOP
) -> Iterator[Console]:
    profile = tempfile.mkdtemp(prefix="synapseops-chromium-")
    context = playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, args=FLAGS, headless=True, viewport=viewport
    )
    try:
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(20_000)
        yield Console(base, context, page)
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)
