"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, the real engine beside it.

The rules of these tests, beside the suite's (tests/conftest.py):

1. Plain (sync) tests: Playwright's sync API in the test's thread, the engine in a thread of its
   own (``live_engine``, tests/web/browser/harness.py). Time limits are Playwright's (every
   wait fails after ``TIMEOUT_MS``) and the harness's (start, stop, each call into the engine).
2. The browser is the system's ``/usr/bin/chromium`` (``make test`` apt-installs it), launched
   through ``executable_path``: ``playwright install`` is never run, a browser download cannot
   work here. A machine without it fails these tests with that message; they never skip.
3. A page fails its test at teardown on any console error (Chromium reports each
   Content-Security-Policy violation as one), any uncaught exception, any request that leaves
   the machine (``PageWatch``).
4. They run last in the session (``pytest_collection_modifyitems``), after every Trio test.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from tests.web.browser.harness import LiveEngine, PageWatch

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 10_000
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
# Quiet and offline: nothing fetched in the background (component updates, field trials, sync),
# no GPU process (headless on a server), no QUIC probing.
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests last. Between two sync calls Playwright leaves its asyncio loop
    marked running in the main thread (playwright/_impl/_greenlets.py) for as long as the
    session's browser lives, and every later test that opens a trio_asyncio loop fails on it
    (tests/test_end_to_end.py and tests/web/test_stream.py did, run after these)."""
    here = Path(__file__).parent
    items.sort(key=lambda item: item.path.is_relative_to(here))


@contextmanager
def plain_asyncio() -> Iterator[None]:
    """While Playwright creates its loop: asyncio's own policy in this thread. trio_asyncio's
    policy (installed on import) would hand it a SyncTrioEventLoop, which cannot run inside
    Playwright's greenlets ("You can't nest calls to run_until_complete()")."""
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(None)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium for the session (the system's; root needs ``--no-sandbox``)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium "
            "chromium-driver)",
            pytrace=False,
        )
    args = CHROMIUM_ARGS + (["--no-sandbox"] if os.geteuid() == 0 else [])
    with plain_asyncio(), sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=args
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a context of its own (1280x900) that fails the test on any error it sees."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    watch = PageWatch().attach(opened)
    try:
        yield opened
    finally:
        context.close()  # events still in flight are delivered before it returns
    assert watch.errors == [], "\n".join(watch.errors)


@pytest.fixture
def live_engine(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fresh_database: Callable[[], Awaitable[str]],
) -> Iterator[LiveEngine]:
    """The whole engine on a fresh database with a local Binance, in a background thread.

    A test changes its configuration with an indirect parameter, a ``Config -> Config``
    function: ``@pytest.mark.parametrize("live_engine", [with_webhooks], indirect=True)``.
    """
    live = LiveEngine(tmp_path, fresh_database, getattr(request, "param", None))
    live.start()
    try:
        yield live
    finally:
        live.stop()
