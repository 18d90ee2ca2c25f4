"""A person on the page, in a real Chromium, against the real engine and a local Binance.

Sign up, create an alert with a hostile name and see its line on the chart (the legend names
the canvas's lines in text), push prices until it fires, see the toast and the status change,
see its notification delivered, delete another alert. Every name is shown as text: no element
is made from it and no dialog opens. The ``page`` fixture fails the test on any console error,
so a Content-Security-Policy violation anywhere in the run fails it too.
"""

from __future__ import annotations

import re
import time

import httpx
from playwright.sync_api import Dialog, Locator, Page, expect

from tests.test_end_to_end import PASSWORD
from tests.web.browser.harness import LiveEngine, shot

HOSTILE = "<img src=x onerror=alert(1)>"


def sign_up(page: Page, base_url: str, username: str) -> None:
    page.goto(base_url + "/")
    page.click("#tab-sign-up")
    form = page.locator("#sign-up-form")
    form.locator("[name=username]").fill(username)
    form.locator("[name=email]").fill(f"{username}@example.com")
    form.locator("[name=password]").fill(PASSWORD)
    form.locator("button[type=submit]").click()
    expect(page.locator("#who")).to_have_text(username)
    expect(page.locator("#live")).to_have_text("live")


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    """Fill and send the sign-in form of a page that shows it."""
    form = page.locator("#sign-in-form")
    form.locator("[name=username]").fill(username)
    form.locator("[name=password]").fill(password)
    form.locator("button[type=submit]").click()


def create_alert(page: Page, symbol: str, target: str, direction: str, name: str) -> None:
    form = page.locator("#create-form")
    form.locator("[name=symbol]").fill(symbol)
    form.locator("[name=target_price]").fill(target)
    form.locator("[name=direction]").select_option(direction)
    form.locator("[name=name]").fill(name)
    form.locator("button[type=submit]").click()
    expect(page.locator("#alerts tbody tr td.name", has_text=name)).to_have_count(1)


def row(page: Page, name: str) -> Locator:
    return page.locator("#alerts tbody tr", has=page.locator("td.name", has_text=name))


def walk(live_engine: LiveEngine, symbol: str, prices: list[str], pause_s: float) -> None:
    """Prices one after another, ``pause_s`` apart (the chart keeps one point a second)."""
    for price in prices:
        live_engine.push(symbol, price)
        time.sleep(pause_s)


def test_an_alert_from_the_page_fires_on_the_chart(live_engine: LiveEngine, page: Page) -> None:
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    sign_up(page, live_engine.base_url, "alice")
    expect(page.locator("#chart-title")).to_have_text("BTCUSDT · binance")
    expect(page.locator("#chart canvas").first).to_be_visible()  # the library loaded

    create_alert(page, "btcusdt", "70000", "above", HOSTILE)
    # The name is text everywhere: in the table, on the chart's legend, never an element.
    expect(row(page, HOSTILE).locator("td.name")).to_have_text(HOSTILE)
    line = page.locator("#chart-legend li.line")
    expect(line).to_have_count(1)
    expect(line.locator(".name")).to_have_text(HOSTILE)
    expect(line).to_contain_text("above 70,000")
    assert page.locator("main img").count() == 0

    live_engine.wait_subscribed("BTCUSDT")
    walk(live_engine, "BTCUSDT", ["69000.5", "69250", "69600.75", "69800"], 0.4)
    expect(page.locator("#last-price")).to_have_text("69,800")

    # A symbol the exchange cannot spell: the stream refuses it, the chart stays on BTCUSDT.
    watch = page.locator("#watch-form")
    watch.locator("[name=symbol]").fill("NOT A SYMBOL!")
    watch.locator("button[type=submit]").click()
    expect(page.locator(".toast.error")).to_contain_text("symbol")
    expect(watch.locator("[name=symbol]")).to_have_value("BTCUSDT")
    live_engine.push("BTCUSDT", "69850")
    expect(page.locator("#last-price")).to_have_text("69,850")
    expect(page.locator("#chart-title")).to_have_text("BTCUSDT · binance")

    # The hint says which direction the engine would infer from the last price.
    form = page.locator("#create-form")
    form.locator("[name=direction]").select_option("")
    form.locator("[name=target_price]").fill("69849.99")
    expect(page.locator("#direction-hint")).to_contain_text("Last price 69,850.")
    expect(page.locator("#direction-hint")).to_contain_text('it will be "below"')
    form.locator("[name=target_price]").fill("69850")
    expect(page.locator("#direction-hint")).to_contain_text('it will be "above"')
    form.locator("[name=target_price]").fill("")

    live_engine.push("BTCUSDT", "70000.25")
    toast = page.locator(".toast.fire")
    expect(toast).to_have_count(1)
    expect(toast.locator("strong")).to_have_text("BTCUSDT rose to 70,000.25")
    expect(toast.locator("p")).to_have_text(f"Alert “{HOSTILE}” fired (above 70,000).")
    expect(row(page, HOSTILE).locator(".status")).to_have_text("fired")
    expect(page.locator("#chart-legend li.line")).to_have_count(0)
    fired = page.locator("#chart-legend li.fired")
    expect(fired).to_have_count(1)
    expect(fired).to_contain_text("fired at 70,000.25")
    shot(page, "page-fired")

    # Its notification: the console sink (the one enabled) delivered it.
    row(page, HOSTILE).locator("button[data-act=notes]").click()
    notes = page.locator("#alerts tr.notes")
    expect(notes).to_contain_text("console (your account): delivered")

    # Another alert, then deleted: its line goes and its row says so.
    create_alert(page, "BTCUSDT", "60000", "below", "floor")
    expect(page.locator("#chart-legend li.line .name")).to_have_text("floor")
    row(page, "floor").locator("button[data-act=delete]").click()
    expect(row(page, "floor").locator(".status")).to_have_text("deleted")
    expect(page.locator("#chart-legend li.line")).to_have_count(0)

    assert page.locator("main img").count() == 0
    assert dialogs == []


def test_a_wrong_password_is_refused_on_the_page(live_engine: LiveEngine, page: Page) -> None:
    sign_up(page, live_engine.base_url, "bob")
    page.click("#sign-out")
    expect(page.locator("#auth-view")).to_be_visible()
    sign_in(page, "bob", "not the password")
    expect(page.locator("#auth-error")).to_have_text(re.compile(r"\S"))
    expect(page.locator("#app-view")).to_be_hidden()
    sign_in(page, "bob")
    expect(page.locator("#who")).to_have_text("bob")


def test_pages_filters_and_a_chart_that_opens_full(live_engine: LiveEngine, page: Page) -> None:
    # Prices before anyone looks: the engine keeps them, and the chart opens with them.
    with httpx.Client(base_url=live_engine.base_url, timeout=10) as client:
        body = {"username": "hana", "password": PASSWORD, "email": "hana@example.com"}
        assert client.post("/api/auth/register", json=body).status_code == 201
        login = client.post("/api/auth/login", json={"username": "hana", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access']}"}
        for i in range(25):
            alert = {"symbol": "ETHUSDT", "target_price": f"{5000 + i}", "direction": "above"}
            alert["name"] = f"eth {i:02d}"
            assert client.post("/api/alerts", json=alert, headers=headers).status_code == 201
        live_engine.wait_subscribed("ETHUSDT")
        walk(live_engine, "ETHUSDT", ["3100.5", "3101", "3102.25"], 1.05)
        assert client.delete("/api/alerts/1", headers=headers).status_code == 200

    page.goto(live_engine.base_url + "/")
    sign_in(page, "hana")
    expect(page.locator("#page-info")).to_have_text("page 1 of 2 · 25 alerts")
    expect(page.locator("#alerts tbody tr")).to_have_count(20)
    expect(page.locator("#alerts tbody tr td.name").first).to_have_text("eth 24")  # newest first
    page.click("#next-page")
    expect(page.locator("#page-info")).to_have_text("page 2 of 2 · 25 alerts")
    expect(page.locator("#alerts tbody tr")).to_have_count(5)
    expect(page.locator("#next-page")).to_be_disabled()

    filters = page.locator("#filter-form")
    filters.locator("[name=status]").select_option("deleted")
    filters.locator("button[type=submit]").click()
    expect(page.locator("#page-info")).to_have_text("page 1 of 1 · 1 alerts")
    expect(page.locator("#alerts tbody tr td.name")).to_have_text("eth 00")
    filters.locator("[name=status]").select_option("")
    filters.locator("[name=symbol]").fill("BTCUSDT")
    filters.locator("button[type=submit]").click()
    expect(page.locator("#alerts-empty")).to_be_visible()

    # Watch ETHUSDT: its recent history draws at once, its 24 live alerts are its lines.
    watch = page.locator("#watch-form")
    watch.locator("[name=symbol]").fill("ethusdt")
    watch.locator("button[type=submit]").click()
    expect(page.locator("#chart-title")).to_have_text("ETHUSDT · binance")
    expect(page.locator("#last-price")).to_have_text("3,102.25")
    expect(page.locator("#chart-empty")).to_be_hidden()
    expect(page.locator("#chart-legend li.line")).to_have_count(24)
    shot(page, "page-history")


def test_the_next_person_in_the_tab_sees_nothing_of_the_last(
    live_engine: LiveEngine, page: Page
) -> None:
    sign_up(page, live_engine.base_url, "jack")
    create_alert(page, "BTCUSDT", "70000", "above", "jack's secret plan")
    expect(page.locator("#chart-legend li.line")).to_have_count(1)
    page.click("#sign-out")
    expect(page.locator("#auth-view")).to_be_visible()
    assert "jack's secret plan" not in page.content()

    sign_up(page, live_engine.base_url, "kate")
    expect(page.locator("#chart-title")).to_have_text("BTCUSDT · binance")
    expect(page.locator("#alerts-empty")).to_be_visible()
    expect(page.locator("#chart-legend li")).to_have_count(0)
    # Jack's alert fires: Kate, watching the same symbol, sees the price and no toast.
    live_engine.wait_subscribed("BTCUSDT")
    live_engine.push("BTCUSDT", "70001")
    expect(page.locator("#last-price")).to_have_text("70,001")
    time.sleep(1.0)  # a fire event would have arrived with the price
    expect(page.locator(".toast.fire")).to_have_count(0)
    assert "jack's secret plan" not in page.content()
    # It did fire: Jack, back, sees it so.
    page.click("#sign-out")
    sign_in(page, "jack")
    expect(row(page, "jack's secret plan").locator(".status")).to_have_text("fired")
