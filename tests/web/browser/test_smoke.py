"""The page opens in a real Chromium from the real engine, under its Content-Security-Policy
(the ``page`` fixture fails the test on any console error: a CSP violation is one)."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.web.browser.harness import LiveEngine, shot


def script_src(csp: str) -> str:
    """The ``script-src`` directive of a policy (``""`` when it has none)."""
    for directive in csp.split(";"):
        name, _, value = directive.strip().partition(" ")
        if name == "script-src":
            return value
    return ""


def test_the_page_opens_under_a_strict_csp(live_engine: LiveEngine, page: Page) -> None:
    response = page.goto(live_engine.base_url + "/")
    assert response is not None and response.status == 200
    csp = response.headers.get("content-security-policy", "")
    sources = script_src(csp)
    assert sources, f"no script-src in {csp!r}"
    assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources
    assert "triggerbook" in page.title().lower()
    page.wait_for_load_state("load")
    shot(page, "smoke")
