"""The page without its chart library (a machine with no npm): it says why, and works on.

The engine is the real one; the library's file is made to answer 404 in the browser, as it does
when ``web/static/vendor/`` was never filled. That failed load is the one console error allowed.
"""

from __future__ import annotations

from playwright.sync_api import Browser, Route, expect

from tests.web.browser.conftest import TIMEOUT_MS, VIEWPORT
from tests.web.browser.harness import LiveEngine, PageWatch, shot
from tests.web.browser.test_page import create_alert, sign_up

LIBRARY = "**/static/vendor/lightweight-charts.standalone.production.js"


def test_without_the_chart_library_the_page_says_why_and_works(
    live_engine: LiveEngine, browser: Browser
) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        watch = PageWatch().attach(page)

        def missing(route: Route) -> None:
            route.fulfill(status=404, body="")

        page.route(LIBRARY, missing)
        sign_up(page, live_engine.base_url, "gus")
        note = page.locator("#chart-missing")
        expect(note).to_be_visible()
        expect(note).to_contain_text("lightweight-charts")
        expect(page.locator("#chart")).to_be_hidden()

        create_alert(page, "BTCUSDT", "70000", "above", "no chart needed")
        expect(page.locator("#chart-legend li.line .name")).to_have_text("no chart needed")
        live_engine.wait_subscribed("BTCUSDT")
        live_engine.push("BTCUSDT", "69999.5")
        expect(page.locator("#last-price")).to_have_text("69,999.5")
        live_engine.push("BTCUSDT", "70000")
        expect(page.locator(".toast.fire strong")).to_have_text("BTCUSDT rose to 70,000")
        expect(page.locator("#chart-legend li.fired")).to_contain_text("fired at 70,000")
        shot(page, "chartless")
    finally:
        context.close()
    assert len(watch.errors) == 1 and "404" in watch.errors[0], watch.errors
