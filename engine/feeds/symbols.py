"""Which symbols each exchange trades: the symbol directory and its actor.

An exchange may describe its list of traded symbols (``Exchange.symbols_url`` /
``parse_symbols``) and one symbol's last price over REST (``price_url`` / ``parse_price``), as pure
pieces. :class:`SymbolDirectory` does the I/O:

- :func:`run_symbol_directory` (started in ``engine/app.py`` after the store, before the feeds and
  the web) loads the lists kept in the database (table ``exchange_symbols``), reports started,
  and only then goes to the network: so a restart without network still knows every list, and
  the start never waits on an exchange. Per enabled exchange with a ``symbols_url`` it fetches
  the list (GET with ``httpx.AsyncClient``, which runs on Trio through anyio; bounded by
  ``FETCH_TIMEOUT_S`` and ``MAX_LIST_BYTES``), keeps it in memory and in the database, and
  fetches it again every ``symbols_refresh_s`` (the first time once a stored list is that old).
  A failed fetch (an HTTP error, a timeout, a body too large, one ``parse_symbols`` cannot read)
  is counted in ``triggerbook_symbol_list_fetches_total{outcome}``, logged, and retried after a
  capped exponential backoff with full jitter (``engine.backoff``; reset by a good fetch); the
  previous list stays in force.
- :meth:`SymbolDirectory.lookup` answers LISTED, UNLISTED or UNVERIFIED (no list for that
  exchange: none described, none fetched yet, or the exchange not enabled).
- :meth:`SymbolDirectory.rest_price` is one bounded HTTP call (``PRICE_TIMEOUT_S`` including the
  wait for one of ``PRICE_CONCURRENCY`` slots), answered from a cache of ``PRICE_CACHE_S``
  seconds, with concurrent asks for one symbol sharing one call; None on any failure.
- :meth:`SymbolDirectory.filtered` is the demand the feed runner follows: a symbol the list
  says the exchange does not trade is never subscribed (150,000 invented symbols must not open
  147 connections that the exchange then sees reconnect as stale, and bans).
"""

from __future__ import annotations

import enum
import logging
import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import trio

from engine.backoff import Backoff
from engine.book.demand import Demand
from engine.errors import StoreUnavailable
from engine.limits import price_problem
from engine.metrics import Counter, Gauge, Metrics
from engine.plugins.exchange import Exchange
from engine.store import symbol_lists

if TYPE_CHECKING:
    from engine.book.demand import Changes, DemandView
    from engine.config import Config
    from engine.plugins.registry import FeedRegistry
    from engine.store import Store

log = logging.getLogger(__name__)

__all__ = ["SymbolCheck", "SymbolDirectory", "SymbolList", "run_symbol_directory"]


class SymbolCheck(enum.Enum):
    """What an exchange's list says of a symbol."""

    LISTED = "listed"
    UNLISTED = "unlisted"
    UNVERIFIED = "unverified"  # no list for that exchange


@dataclass(frozen=True, slots=True)
class SymbolList:
    """One exchange's traded symbols, when and where they were fetched."""

    symbols: frozenset[str]
    fetched_at: datetime
    source: str


class FetchFailed(Exception):
    """A GET that gave no usable body; ``outcome`` names the kind for the metric."""

    def __init__(self, outcome: str, detail: str) -> None:
        self.outcome = outcome
        super().__init__(detail)


def _without_query(url: str) -> str:
    """``url`` without its query and fragment (a token may ride in the query): for logs and the
    stored ``source``."""
    return urlunsplit(urlsplit(url)._replace(query="", fragment=""))


class SymbolDirectory:
    """Every enabled exchange's symbol list and REST price; see the module docstring.

    Built by :meth:`for_config` (or from exchange instances in tests); the lists arrive through
    :func:`run_symbol_directory`. Everything but :meth:`rest_price` is synchronous and cheap.
    """

    FETCH_TIMEOUT_S = 30.0  # one whole list fetch, connect to last byte
    CONNECT_TIMEOUT_S = 10.0
    MAX_LIST_BYTES = 64 << 20  # Binance's whole exchangeInfo is a few MB
    PRICE_TIMEOUT_S = 2.0  # a create waits on it: the wait for a slot and the call
    MAX_PRICE_BYTES = 64 << 10
    PRICE_CONCURRENCY = 4
    PRICE_CACHE_S = 5.0
    PRICE_CACHE_MAX = 1024
    BACKOFF_BASE_S = 5.0
    BACKOFF_CAP_S = 600.0  # and never more than the exchange's refresh period

    def __init__(
        self,
        exchanges: Mapping[str, Exchange],
        metrics: Metrics | None = None,
        *,
        trust_env: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.exchanges = dict(exchanges)
        self.trust_env = trust_env
        self._rng = rng or random.Random()
        self._lists: dict[str, SymbolList] = {}
        self._versions: defaultdict[str, int] = defaultdict(int)
        self._changed = trio.Event()
        self._client: httpx.AsyncClient | None = None
        self._price_slots = trio.CapacityLimiter(self.PRICE_CONCURRENCY)
        self._prices: dict[tuple[str, str], tuple[float, Decimal | None]] = {}
        self._inflight: dict[tuple[str, str], trio.Event] = {}
        self.fetches = Counter(
            "triggerbook_symbol_list_fetches_total",
            "Fetches of an exchange's symbol list, by outcome (ok, http-status, timeout, "
            "network, too-large, malformed).",
            ["exchange", "outcome"],
        )
        self.price_calls = Counter(
            "triggerbook_rest_price_calls_total",
            "REST last-price calls, by outcome (ok, timeout, failed).",
            ["exchange", "outcome"],
        )
        if metrics is not None:
            self.export_to(metrics)

    @classmethod
    def for_config(
        cls, registry: FeedRegistry, config: Config, metrics: Metrics | None = None
    ) -> SymbolDirectory:
        """A directory of every enabled WebSocket exchange, configured as the feeds are."""
        exchanges = {
            name: registry.exchange(name, config.feeds[name])
            for name in config.enabled_feeds()
            if registry.is_exchange(name)
        }
        return cls(exchanges, metrics)

    def export_to(self, metrics: Metrics) -> None:
        """Add this directory's counters and gauges to ``metrics`` (rendered on ``/metrics``)."""
        metrics.add(self.fetches)
        metrics.add(self.price_calls)
        metrics.add(
            Gauge(
                "triggerbook_symbols_listed",
                "Symbols in each exchange's list (absent: no list, symbols unverified).",
                ["exchange"],
                callback=lambda: {(n,): float(len(lst.symbols)) for n, lst in self._lists.items()},
            )
        )
        metrics.add(
            Gauge(
                "triggerbook_symbol_list_age_seconds",
                "Seconds since each exchange's symbol list was fetched.",
                ["exchange"],
                callback=lambda: {
                    (n,): (datetime.now(UTC) - lst.fetched_at).total_seconds()
                    for n, lst in self._lists.items()
                },
            )
        )

    # --- what the web and the runner ask ---------------------------------------------------

    def lookup(self, exchange: str, symbol: str) -> SymbolCheck:
        """Whether ``exchange``'s list has ``symbol`` (in the exchange's spelling, as
        ``FeedRegistry.normalise`` returns it); UNVERIFIED when there is no list."""
        listed = self._lists.get(exchange)
        if listed is None:
            return SymbolCheck.UNVERIFIED
        return SymbolCheck.LISTED if symbol in listed.symbols else SymbolCheck.UNLISTED

    def listed(self, exchange: str) -> SymbolList | None:
        """The list in force for ``exchange``, or None."""
        return self._lists.get(exchange)

    def allowed(self, exchange: str, symbols: frozenset[str]) -> frozenset[str]:
        """``symbols`` less those ``exchange``'s list says it does not trade."""
        listed = self._lists.get(exchange)
        return symbols if listed is None else symbols & listed.symbols

    def version(self, exchange: str) -> int:
        """How many times ``exchange``'s list has changed."""
        return self._versions[exchange]

    async def wait_changed(self) -> None:
        """Wait for the next change of any list."""
        await self._changed.wait()

    def filtered(self, demand: DemandView) -> FilteredDemand:
        """``demand`` (a :class:`~engine.book.demand.DemandView`) as the feeds should follow it:
        each exchange's symbols less those its list says it does not trade."""
        return FilteredDemand(demand, self)

    def set_list(
        self, exchange: str, symbols: frozenset[str], fetched_at: datetime, source: str
    ) -> None:
        """Put a list in force (a fetch, a stored one, a test) and wake the feeds if it changed."""
        old = self._lists.get(exchange)
        self._lists[exchange] = SymbolList(frozenset(symbols), fetched_at, source)
        if old is None or old.symbols != symbols:
            self._versions[exchange] += 1
            self._changed.set()
            self._changed = trio.Event()

    async def rest_price(self, exchange: str, symbol: str) -> Decimal | None:
        """``symbol``'s last price on ``exchange`` over REST, or None: when the exchange
        documents no price URL, the directory is not running, or the call fails or takes over
        ``PRICE_TIMEOUT_S``. Cached ``PRICE_CACHE_S`` seconds (a failure too, so a dead exchange
        is not asked by every create); concurrent asks for one symbol share one call."""
        ex = self.exchanges.get(exchange)
        if ex is None or self._client is None:
            return None
        key = (exchange, symbol)
        while True:
            hit = self._prices.get(key)
            if hit is not None and hit[0] > trio.current_time():
                return hit[1]
            pending = self._inflight.get(key)
            if pending is None:
                break
            with trio.move_on_after(self.PRICE_TIMEOUT_S):
                await pending.wait()
            if not pending.is_set():
                return None
            hit = self._prices.get(key)
            return None if hit is None else hit[1]
        done = self._inflight[key] = trio.Event()
        try:
            price = await self._call_price(ex, symbol)
            if len(self._prices) >= self.PRICE_CACHE_MAX:
                self._prices.pop(next(iter(self._prices)))
            self._prices[key] = (trio.current_time() + self.PRICE_CACHE_S, price)
            return price
        finally:
            del self._inflight[key]
            done.set()

    async def _call_price(self, ex: Exchange, symbol: str) -> Decimal | None:
        try:
            url = ex.price_url(symbol)
        except ValueError:
            return None
        if url is None:
            return None
        outcome = "timeout"
        try:
            with trio.move_on_after(self.PRICE_TIMEOUT_S):
                async with self._price_slots:
                    try:
                        body = await self._get(url, self.MAX_PRICE_BYTES, self.PRICE_TIMEOUT_S)
                        price = ex.parse_price(body, symbol)
                    except FetchFailed as exc:
                        outcome = "timeout" if exc.outcome == "timeout" else "failed"
                        log.info("%s: no REST price for %s (%s)", ex.name, symbol, exc)
                        return None
                    except ValueError as exc:
                        outcome = "failed"
                        log.info("%s: no REST price for %s (%s)", ex.name, symbol, exc)
                        return None
                    if price_problem(price) is not None:
                        outcome = "failed"
                        return None
                    outcome = "ok"
                    return price
            return None
        finally:
            self.price_calls.inc(exchange=ex.name, outcome=outcome)

    # --- I/O --------------------------------------------------------------------------------

    async def _get(self, url: str, max_bytes: int, timeout: float) -> bytes:  # noqa: ASYNC109
        """The body of ``GET url``. Raises :class:`FetchFailed` for a status other than 200, a
        body over ``max_bytes`` (decoded), ``timeout`` seconds passed, or a transport error.
        (``timeout`` is a parameter, not the caller's scope: it becomes a :class:`FetchFailed`
        with its own outcome, counted apart from the caller's cancellation.)"""
        client = self._client
        if client is None:
            raise FetchFailed("network", "the symbol directory is not running")
        try:
            with trio.fail_after(timeout):
                async with client.stream("GET", url) as response:
                    if response.status_code != 200:
                        raise FetchFailed("http-status", f"HTTP {response.status_code}")
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise FetchFailed("too-large", f"a body of {declared} bytes")
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise FetchFailed("too-large", f"a body over {max_bytes} bytes")
                        chunks.append(chunk)
        except trio.TooSlowError:
            raise FetchFailed("timeout", f"no whole answer within {timeout:g}s") from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise FetchFailed("network", f"{type(exc).__name__}: {exc}") from None
        return b"".join(chunks)

    async def fetch_list(self, name: str) -> frozenset[str]:
        """Fetch and parse ``name``'s list once (nothing kept). Raises :class:`FetchFailed`."""
        ex = self.exchanges[name]
        url = ex.symbols_url()
        if url is None:
            raise FetchFailed("network", f"{name} describes no symbol list")
        body = await self._get(url, self.MAX_LIST_BYTES, self.FETCH_TIMEOUT_S)
        try:
            # A big document takes tens of ms to read: off the event loop's thread.
            return await trio.to_thread.run_sync(ex.parse_symbols, body)
        except ValueError as exc:
            raise FetchFailed("malformed", str(exc)) from None
        except Exception as exc:  # a plugin's parse_symbols is not allowed to stop the engine
            log.exception("%s: parse_symbols raised", name)
            raise FetchFailed("malformed", f"{type(exc).__name__}: {exc}") from None

    def fetchable(self) -> list[str]:
        """The exchanges with a list to fetch, in name order."""
        return sorted(n for n, ex in self.exchanges.items() if ex.symbols_url() is not None)

    async def load(self, store: Store | None) -> None:
        """Put the stored lists of the fetchable exchanges in force. A database that cannot be
        reached leaves them unverified until the first fetch (logged, not raised)."""
        if store is None:
            return
        try:
            rows = await store.bridge.run(symbol_lists.load_all)
        except StoreUnavailable as exc:
            log.warning("symbol lists: the stored lists cannot be read (%s); unverified", exc)
            return
        fetchable = set(self.fetchable())
        for exchange, symbols, fetched_at, source in rows:
            if exchange in fetchable:
                self.set_list(exchange, frozenset(symbols), fetched_at, source)
                log.info("%s: %d symbols listed (stored, %s)", exchange, len(symbols), fetched_at)

    async def keep_fresh(self, name: str, store: Store | None) -> None:
        """Fetch ``name``'s list now (or when the stored one is due), then every
        ``symbols_refresh_s``; back off on failure; until cancelled."""
        ex = self.exchanges[name]
        refresh = ex.symbols_refresh_s
        backoff = Backoff(self.BACKOFF_BASE_S, min(self.BACKOFF_CAP_S, refresh), rng=self._rng)
        stored = self._lists.get(name)
        delay = 0.0
        if stored is not None:
            age = (datetime.now(UTC) - stored.fetched_at).total_seconds()
            delay = min(refresh, max(0.0, refresh - age))
        while True:
            await trio.sleep(delay)
            try:
                symbols = await self.fetch_list(name)
            except FetchFailed as exc:
                delay = backoff.next_delay()
                self.fetches.inc(exchange=name, outcome=exc.outcome)
                log.warning(
                    "%s: symbol list not fetched (%s: %s); %s; again in %.1fs",
                    name,
                    exc.outcome,
                    exc,
                    "the previous list stays" if name in self._lists else "symbols unverified",
                    delay,
                )
                continue
            backoff.succeeded()
            delay = refresh
            self.fetches.inc(exchange=name, outcome="ok")
            source = _without_query(ex.symbols_url() or "")
            fetched_at = datetime.now(UTC)
            if store is not None:
                fetched_at = await self._save(store, name, symbols, source) or fetched_at
            self.set_list(name, symbols, fetched_at, source)
            log.info("%s: %d symbols listed (fetched)", name, len(symbols))

    async def _save(
        self, store: Store, name: str, symbols: frozenset[str], source: str
    ) -> datetime | None:
        try:
            return await store.bridge.run(symbol_lists.save, name, sorted(symbols), source)
        except (StoreUnavailable, asyncpg.PostgresError) as exc:
            log.warning("%s: symbol list kept in memory only (%s)", name, exc)
            return None

    async def run(
        self, store: Store | None, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Load the stored lists, report started, then keep every list fresh and serve
        :meth:`rest_price` until cancelled."""
        await self.load(store)
        timeout = httpx.Timeout(self.FETCH_TIMEOUT_S, connect=self.CONNECT_TIMEOUT_S)
        limits = httpx.Limits(
            max_connections=self.PRICE_CONCURRENCY + len(self.exchanges) + 1,
            max_keepalive_connections=self.PRICE_CONCURRENCY,
        )
        async with httpx.AsyncClient(
            timeout=timeout,
            limits=limits,
            follow_redirects=False,
            trust_env=self.trust_env,
            headers={"Accept": "application/json", "User-Agent": "triggerbook"},
        ) as client:
            self._client = client
            try:
                async with trio.open_nursery() as nursery:
                    for name in self.fetchable():
                        nursery.start_soon(self.keep_fresh, name, store)
                    task_status.started()
                    await trio.sleep_forever()
            finally:
                self._client = None


async def run_symbol_directory(
    directory: SymbolDirectory,
    store: Store | None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The directory's actor: ``task_status.started()`` once the stored lists are loaded (never
    waiting on the network); then fetches and refreshes until cancelled."""
    await directory.run(store, task_status=task_status)


class FilteredDemand:
    """A demand (``engine.book.demand.DemandView``) seen through a :class:`SymbolDirectory`: the
    same interface, each exchange's symbols less those its list says it does not trade.

    It keeps the filtered sets itself (a :class:`~engine.book.demand.Demand`, with its own
    versions and change log) and brings them up to date before each read by filtering the
    demand's changes since it last looked: O(change) per change of demand. A change of the
    list (rare: every ``symbols_refresh_s``) is filtered afresh against the whole demand, O(n).
    """

    def __init__(self, demand: DemandView, directory: SymbolDirectory) -> None:
        self._demand = demand
        self._directory = directory
        self._out = Demand()
        self._seen_demand: dict[str, int] = {}  # exchange -> demand version filtered so far
        self._seen_list: dict[str, int] = {}  # exchange -> list version filtered against

    def _pull(self, exchange: str) -> None:
        """Filter what changed in the demand (or the list) of ``exchange`` since the last pull."""
        directory, out = self._directory, self._out
        list_version = directory.version(exchange)
        if self._seen_list.get(exchange) != list_version:
            symbols = self._demand.symbols(exchange)
            self._seen_demand[exchange] = self._demand.version(exchange)
            self._seen_list[exchange] = list_version
            out.set(exchange, directory.allowed(exchange, symbols))
            return
        changes = self._demand.changes_since(exchange, self._seen_demand[exchange])
        self._seen_demand[exchange] = changes.version
        if changes.snapshot:
            out.set(exchange, directory.allowed(exchange, changes.added))
            return
        for symbol in changes.removed:
            out.discard(exchange, symbol)
        listed = directory.listed(exchange)
        for symbol in changes.added:
            if listed is None or symbol in listed.symbols:
                out.add(exchange, symbol)

    def symbols(self, exchange: str) -> frozenset[str]:
        """The symbols of ``exchange`` to subscribe (a copy, O(n))."""
        self._pull(exchange)
        return self._out.symbols(exchange)

    def unfiltered(self, exchange: str) -> frozenset[str]:
        """Every symbol with live triggers on ``exchange``, listed or not."""
        return self._demand.symbols(exchange)

    def version(self, exchange: str) -> int:
        """Grows on every change of :meth:`symbols` (a change of demand or of the list)."""
        self._pull(exchange)
        return self._out.version(exchange)

    def changes_since(self, exchange: str, version: int) -> Changes:
        """What changed in :meth:`symbols` after ``version``; see ``DemandView``."""
        self._pull(exchange)
        return self._out.changes_since(exchange, version)

    async def wait_changed(self, exchange: str, seen_version: int) -> int:
        """Wait until :meth:`version` is past ``seen_version``; return the new one."""
        while self.version(exchange) <= seen_version:
            seen_demand = self._seen_demand[exchange]
            async with trio.open_nursery() as nursery:

                async def demand_changed(seen: int = seen_demand) -> None:
                    await self._demand.wait_changed(exchange, seen)
                    nursery.cancel_scope.cancel()

                async def list_changed() -> None:
                    await self._directory.wait_changed()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(demand_changed)
                nursery.start_soon(list_changed)
        return self.version(exchange)
