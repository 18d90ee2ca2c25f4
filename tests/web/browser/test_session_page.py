"""Sessions on the page, in Chromium, against the engine's real tokens with short lifetimes.

The page refreshes its access token before it expires; a request that meets a 401 anyway (the
page's timers held back with Playwright's clock while the token expires on the server) is
refreshed once and sent again; a refused refresh signs the person out with a note, and the
live stream stops. No token ever appears in a URL.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from playwright.sync_api import Page, Request, expect

from engine.config import Config
from tests.web.browser.harness import LiveEngine
from tests.web.browser.test_page import create_alert, sign_up

ACCESS_TTL_S = 2


def short_access(config: Config) -> Config:
    return replace(config, auth=replace(config.auth, access_ttl_s=ACCESS_TTL_S))


def short_refresh(config: Config) -> Config:
    return replace(config, auth=replace(config.auth, access_ttl_s=1, refresh_ttl_s=3))


def watch_requests(page: Page) -> list[Request]:
    seen: list[Request] = []
    page.on("request", lambda request: seen.append(request))
    return seen


def no_token_in_urls(requests: list[Request]) -> None:
    for request in requests:
        assert "token" not in request.url.lower() and "eyJ" not in request.url, request.url


@pytest.mark.parametrize("live_engine", [short_access], indirect=True)
def test_the_page_refreshes_its_token_before_it_expires(
    live_engine: LiveEngine, page: Page
) -> None:
    requests = watch_requests(page)
    sign_up(page, live_engine.base_url, "dora")
    time.sleep(3 * ACCESS_TTL_S)  # three lifetimes: the page's timer refreshed meanwhile
    create_alert(page, "BTCUSDT", "70000", "above", "still signed in")
    refreshes = [r for r in requests if r.url.endswith("/api/auth/refresh")]
    assert len(refreshes) >= 3
    creates = [r for r in requests if r.method == "POST" and r.url.endswith("/api/alerts")]
    assert len(creates) == 1  # no 401 met: sent once
    expect(page.locator("#live")).to_have_text("live")
    no_token_in_urls(requests)


@pytest.mark.parametrize("live_engine", [short_access], indirect=True)
def test_a_401_is_refreshed_once_and_the_request_sent_again(
    live_engine: LiveEngine, page: Page
) -> None:
    requests = watch_requests(page)
    page.clock.install()  # the page's timers run only when the test says
    sign_up(page, live_engine.base_url, "erin")
    page.clock.pause_at(time.time() * 1000 + 1000)
    time.sleep(ACCESS_TTL_S + 1.5)  # the access token expires on the server; no timer ran
    refreshed_before = sum(r.url.endswith("/api/auth/refresh") for r in requests)
    create_alert(page, "BTCUSDT", "70000", "above", "after a 401")
    creates = [r for r in requests if r.method == "POST" and r.url.endswith("/api/alerts")]
    statuses = [c.response().status for c in creates]  # type: ignore[union-attr]
    assert statuses == [401, 201]
    assert sum(r.url.endswith("/api/auth/refresh") for r in requests) == refreshed_before + 1
    no_token_in_urls(requests)


@pytest.mark.parametrize("live_engine", [short_refresh], indirect=True)
def test_a_refused_refresh_signs_out_with_a_note(live_engine: LiveEngine, page: Page) -> None:
    sign_up(page, live_engine.base_url, "fay")
    # The refresh token lives 3 s: a refresh after that is refused, and the page says so.
    expect(page.locator("#auth-view")).to_be_visible(timeout=10_000)
    expect(page.locator("#auth-error")).to_have_text("Your session has expired: sign in again.")
    expect(page.locator("#live")).to_have_text("offline")
    expect(page.locator("#app-view")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('triggerbook.refresh')") is None
