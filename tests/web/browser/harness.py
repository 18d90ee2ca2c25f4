"""The real-browser harness: the whole engine in a thread of its own, a page that fails on errors.

Playwright's sync API drives the browser from the test's (main) thread, so the engine cannot run
in that thread's loop: :class:`LiveEngine` runs it in a background thread with its own
``trio.run`` (exactly what ``triggerbook run`` starts, a fresh database, a local Binance), and the
test reaches into that loop only through ``trio.from_thread`` with the loop's token.

:class:`PageWatch` records what must never happen on a page: a console error (Chromium logs every
Content-Security-Policy violation and every failed load as one), an uncaught exception, and a
request to anything but the engine (the page works with no internet: no CDN, no outside fonts).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import trio
from playwright.sync_api import ConsoleMessage, Page, Request

from engine.app import Engine, run_engine
from engine.config import Config
from engine.feeds.testing import ExchangeServer, read_binance_request, serve_exchange
from engine.plugins.registry import load_registry
from tests.test_end_to_end import engine_config, trade

T = TypeVar("T")

START_TIMEOUT_S = 30.0  # migrations on a fresh database, the feed connected, the web bound
STOP_TIMEOUT_S = 15.0  # the web's drain, then the back end's flush
LIFETIME_S = 300.0  # a hang guard over the engine's whole run: a test never takes this long
CALL_TIMEOUT_S = 10.0  # one call into the engine's loop (a push, a store query)
SCREENSHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


class LiveEngine:
    """The engine and a local Binance running in a background thread, for a sync browser test.

    ``start()`` returns once the engine serves (or raises what stopped it); ``stop()`` cancels
    it, joins the thread and raises whatever the thread raised, so an engine that failed during
    the test fails the test. ``base_url`` is the page's address; ``push`` sends a Binance trade
    frame through the local exchange (trade ids increase across calls); ``call`` runs an async
    function in the engine's loop (e.g. a query on ``engine.parts.store``) and returns its result.
    """

    def __init__(
        self,
        tmp_path: Path,
        make_database: Callable[[], Awaitable[str]],
        adjust: Callable[[Config], Config] | None = None,
    ) -> None:
        self._tmp_path = tmp_path
        self._adjust = adjust  # a test's change to the configuration (a sink on, a short TTL)
        self._make_database = make_database
        self._trade_ids = itertools.count(1)
        self._ids_lock = threading.Lock()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._server: ExchangeServer | None = None
        self._engine: Engine | None = None
        self._thread = threading.Thread(target=self._run, name="live-engine", daemon=True)

    # --- the test's side (main thread) ---------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The running :class:`Engine` (read its parts only through :meth:`call`)."""
        assert self._engine is not None, "the engine has not started"
        return self._engine

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the engine's web server."""
        return f"http://127.0.0.1:{self.engine.http_port}"

    def start(self) -> None:
        """Start the thread and wait until the engine serves; raises what failed it."""
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise TimeoutError(f"the engine did not start within {START_TIMEOUT_S} s")
        if self._error is not None:
            self._thread.join(STOP_TIMEOUT_S)
            raise self._error

    def stop(self) -> None:
        """Cancel the engine, join the thread, raise whatever the thread raised."""
        if self._token is not None and self._scope is not None:
            # The loop may have ended already (with an error, raised below).
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():
            raise TimeoutError(f"the engine did not stop within {STOP_TIMEOUT_S} s")
        if self._error is not None:
            raise self._error

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await fn(*args)`` in the engine's loop (under ``CALL_TIMEOUT_S``); its result."""
        assert self._token is not None, "the engine has not started"
        return trio.from_thread.run(_timed, fn, args, trio_token=self._token)

    def push(self, symbol: str, price: str) -> None:
        """Send a trade of ``symbol`` at ``price`` to every feed connection that subscribed it."""
        with self._ids_lock:
            trade_id = next(self._trade_ids)
        self.call(self._exchange.send_for, symbol, trade(symbol, price, trade_id))

    def wait_subscribed(self, symbol: str, timeout: float = CALL_TIMEOUT_S) -> None:
        """Block until the engine's feed has subscribed ``symbol``; ``trio.TooSlowError`` after
        ``timeout`` seconds."""
        server = self._exchange

        async def wait() -> None:
            with trio.fail_after(timeout):
                await server.wait_until(lambda: symbol in server.subscribed())

        assert self._token is not None
        trio.from_thread.run(wait, trio_token=self._token)

    @property
    def _exchange(self) -> ExchangeServer:
        assert self._server is not None, "the engine has not started"
        return self._server

    # --- the engine's side (its own thread and loop) -------------------------------------------

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as error:  # handed to the test: start() or stop() raises it
            self._error = error
        finally:
            self._ready.set()

    async def _main(self) -> None:
        with trio.fail_after(LIFETIME_S):
            database = await self._make_database()
            async with serve_exchange(read_binance_request) as server, trio.open_nursery() as n:
                config = engine_config(self._tmp_path, database, server)
                if self._adjust is not None:
                    config = self._adjust(config)
                self._engine = await n.start(run_engine, config, load_registry())
                self._server = server
                self._scope = n.cancel_scope
                self._token = trio.lowlevel.current_trio_token()
                self._ready.set()
                await trio.sleep_forever()


async def _timed(fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    with trio.fail_after(CALL_TIMEOUT_S):
        return await fn(*args)


@dataclass
class PageWatch:
    """What went wrong on a page: console errors (CSP violations and failed loads among them),
    uncaught exceptions, and requests that left the machine. ``attach`` starts listening."""

    errors: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> PageWatch:
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("request", self._on_request)
        return self

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            if _refused_by_api(message.text, where):
                return
            self.errors.append(f"console error: {message.text} ({where})")

    def _on_request(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOCAL_HOSTS:
            self.errors.append(f"request off the machine: {request.method} {request.url}")


def _refused_by_api(text: str, url: str) -> bool:
    """A 4xx answer of the API to a fetch (a wrong password, no price yet): Chromium logs it as
    a failed load, but it is the page's to show, and the tests check that it does. A failed
    load of the page's own files, or a 5xx from anything, is still an error."""
    found = re.search(r"status of (\d{3})", text)
    return (
        text.startswith("Failed to load resource")
        and found is not None
        and 400 <= int(found.group(1)) < 500
        and urlsplit(url).path.startswith("/api/")
    )


def shot(page: Page, name: str) -> Path:
    """Save a screenshot of ``page`` as ``var/screenshots/<name>.png`` (gitignored); its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
