"""The harness itself: the engine in its thread takes pushed prices and answers calls into its
loop, and a page that breaks its Content-Security-Policy is seen (so the ``page`` fixture would
fail its test)."""

from __future__ import annotations

import httpx
from playwright.sync_api import Browser

from tests.test_end_to_end import login, wait_delivered
from tests.web.browser.harness import LiveEngine, PageWatch


def test_a_pushed_price_fires_an_alert_of_the_live_engine(live_engine: LiveEngine) -> None:
    async def sign_in() -> dict[str, str]:
        async with httpx.AsyncClient(base_url=live_engine.base_url) as client:
            return await login(client, "alice")

    headers = live_engine.call(sign_in)
    with httpx.Client(base_url=live_engine.base_url, headers=headers, timeout=10) as client:
        body = {"symbol": "BTCUSDT", "target_price": "70000", "direction": "above"}
        alert = client.post("/api/alerts", json=body).json()
        live_engine.wait_subscribed("BTCUSDT")
        live_engine.push("BTCUSDT", "69999.99")
        live_engine.push("BTCUSDT", "70000.00")
        notes = live_engine.call(wait_delivered, live_engine.engine, alert["id"])
        assert [(n.channel, n.state) for n in notes] == [("console", "delivered")]
        fired = client.get(f"/api/alerts/{alert['id']}").json()
    assert fired["status"] == "triggered" and fired["triggered_price"] == "70000.00"


def test_a_csp_violation_is_caught(browser: Browser) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        watch = PageWatch().attach(page)
        page.route(
            "http://127.0.0.1:9/",
            lambda route: route.fulfill(
                content_type="text/html",
                headers={"Content-Security-Policy": "default-src 'none'; img-src data:"},
                body="<link rel=icon href='data:,'><title>x</title><script>1</script>",
            ),
        )
        page.goto("http://127.0.0.1:9/")
    finally:
        context.close()
    assert len(watch.errors) == 1 and "Content Security Policy" in watch.errors[0], watch.errors
