"""Headless Chromium for end-to-end tests: Debian's /usr/bin/chromium driven by Playwright.

No browser is ever downloaded (`playwright install` is never run): Playwright launches the
system binary through `executable_path`. Each test gets a fresh profile directory, so storage
(the theme choice in localStorage) never leaks between tests. Console errors, uncaught page
errors and failed requests are recorded on the page fixture; tests assert there are none.

Every page runs under the Content-Security-Policy the app sends (explorer/core/csp.py), and
the fixture itself fails a test, whatever it asserts, when a page of the app came without the
header or the browser reported a CSP violation (a test that provokes one on purpose takes it
out of `csp_violations` once it has checked it).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import REPO

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
# Quiet, offline, reproducible: nothing here may reach the network or start background work.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Chromium logs each violation as a console error ("Refused to execute inline script because it
# violates the following Content Security Policy directive: ..."); the listener added to every
# document below reports the rest (e.g. a blocked eval) the same way.
CSP_VIOLATION = re.compile(r"Content Security Policy|CSP violation", re.IGNORECASE)
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => console.error(
  `CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} in ${e.documentURI}`));
"""


@dataclass
class BrowserPage:
    """A Playwright page plus what went wrong on it."""

    page: object  # playwright.sync_api.Page
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    pages_without_csp: list[str] = field(default_factory=list)

    def on_console_error(self, text: str) -> None:
        self.console_errors.append(text)
        if CSP_VIOLATION.search(text):
            self.csp_violations.append(text)

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        """Save test-artifacts/<name>.png (git-ignored) and return its path."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`make install` does).")
    return CHROMIUM


# Module scope, not session: the sync driver runs an event loop in the main thread while it
# lives, and Django then refuses ORM calls in later (non-e2e) tests as "async context".
@pytest.fixture(scope="module")
def playwright_driver():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser_options() -> dict:
    """Context options; override in a test module (e.g. a phone viewport or dark colour scheme)."""
    return {"viewport": {"width": 1280, "height": 800}, "color_scheme": "light"}


@pytest.fixture
def browser_page(
    live_server_url, playwright_driver, chromium_path, browser_options
) -> Iterator[BrowserPage]:
    """A page in a fresh Chromium profile. Depends on live_server_url so the server (and the
    test database) exist before the browser's event loop does."""
    profile = tempfile.mkdtemp(prefix="sfe-chromium-")
    context = playwright_driver.chromium.launch_persistent_context(
        profile,
        executable_path=str(chromium_path),
        headless=True,
        args=CHROMIUM_ARGS,
        **browser_options,
    )
    try:
        context.add_init_script(REPORT_CSP_VIOLATIONS)
        page = context.pages[0] if context.pages else context.new_page()
        result = BrowserPage(page=page)
        page.on(
            "console",
            lambda msg: (
                msg.type == "error"
                and result.on_console_error(f"{msg.text} at {msg.location.get('url', '?')}")
            ),
        )
        page.on("pageerror", lambda exc: result.console_errors.append(f"uncaught: {exc}"))
        page.on(
            "requestfailed", lambda req: result.failed_requests.append(f"{req.url}: {req.failure}")
        )
        page.on(
            "response",
            lambda resp: (
                resp.status >= 400 and result.failed_requests.append(f"{resp.url}: {resp.status}")
            ),
        )
        page.on("response", lambda resp: _check_policy(resp, live_server_url, result))
        page.set_default_timeout(15_000)
        yield result
        if result.pages_without_csp or result.csp_violations:
            pytest.fail(
                "Content-Security-Policy: pages without it "
                f"{result.pages_without_csp}, violations {result.csp_violations}"
            )
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


def _check_policy(response, live_server_url: str, result: BrowserPage) -> None:
    """Note a document (page or frame) of the app served without a Content-Security-Policy."""
    if response.request.resource_type != "document" or not response.url.startswith(live_server_url):
        return
    if "content-security-policy" not in response.headers:
        result.pages_without_csp.append(response.url)


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    """The sync Playwright driver (module scope) keeps an event loop running in the main
    thread, and Django then refuses this test's own ORM calls (building rows, the flush of
    transactional_db) as "async context". They are plain synchronous calls: allow them.
    Autouse, so it is set up before transactional_db and torn down after its flush."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
