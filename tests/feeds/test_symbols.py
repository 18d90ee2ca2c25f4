"""engine/feeds/symbols.py: symbol lists fetched over real HTTP, kept in the real database, the
feeds' demand filtered through them, and REST prices.

The exchange side is ``engine.feeds.testing.RestServer`` (h11 on a local port) serving the
recorded ``tests/data/binance_exchange_info.json`` and ``ticker/price`` answers; the client is
the directory's own httpx client.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest
import trio
import trio.testing

from engine.feeds import symbols
from engine.feeds.binance import Binance
from engine.feeds.runner import ExchangeFeed
from engine.feeds.status import FeedStates
from engine.feeds.symbols import SymbolCheck, SymbolDirectory, run_symbol_directory
from engine.feeds.testing import ManualDemand, RestReply, serve_exchange, serve_rest
from engine.feeds.testing import read_binance_request as read_request
from engine.metrics import Metrics
from engine.model import Tick
from engine.store import symbol_lists
from tests.test_backoff import spy_on

if TYPE_CHECKING:
    from engine.store import Store

DATA = Path(__file__).resolve().parent.parent / "data"
INFO = (DATA / "binance_exchange_info.json").read_bytes()
LISTED = {"ETHBTC", "BNBBTC", "BTCUSDT", "ETHUSDT"}  # LUNABUSD is in BREAK


def info_route(body: bytes = INFO, status: int = 200) -> Callable[[str], RestReply]:
    return lambda target: (status, body)


def ticker_route(prices: dict[str, str]) -> Callable[[str], RestReply]:
    def answer(target: str) -> RestReply:
        symbol = parse_qs(urlsplit(target).query)["symbol"][0]
        if symbol not in prices:
            return 400, b'{"code":-1121,"msg":"Invalid symbol."}'
        return 200, f'{{"symbol":"{symbol}","price":"{prices[symbol]}"}}'.encode()

    return answer


def directory_for(rest_url: str, **options: object) -> SymbolDirectory:
    exchange = Binance({"url": "ws://127.0.0.1:1", "rest_url": rest_url, **options})
    return SymbolDirectory({"binance": exchange}, Metrics(), rng=random.Random(7))


async def until(condition: Callable[[], object], poll_s: float) -> None:
    """Wait until ``condition()`` holds, looking every ``poll_s`` (virtual) seconds; callers
    bound it with ``trio.fail_after``."""
    for _ in range(1_000_000):
        if condition():
            return
        await trio.sleep(poll_s)
    raise AssertionError("condition never held")


def price_asks(requests: list[str]) -> list[str]:
    return [r for r in requests if r.startswith("/api/v3/ticker/price")]


async def listed(directory: SymbolDirectory) -> None:
    while directory.listed("binance") is None:
        await directory.wait_changed()


# --- the pure pieces ----------------------------------------------------------------------------


def test_binance_reads_the_trading_symbols_of_exchange_info() -> None:
    assert Binance().parse_symbols(INFO) == LISTED


@pytest.mark.parametrize(
    "body",
    [b"", b"{not json", b"[]", b'{"symbols": 3}', b'{"symbols": [{"symbol": 1}]}', b'{"x": 1}'],
)
def test_binance_refuses_a_body_that_is_not_exchange_info(body: bytes) -> None:
    with pytest.raises(ValueError, match="not an exchangeInfo document"):
        Binance().parse_symbols(body)


def test_binance_refuses_a_list_with_nothing_trading() -> None:
    body = b'{"symbols": [{"symbol": "LUNABUSD", "status": "BREAK"}]}'
    with pytest.raises(ValueError, match="no symbol trading"):
        Binance().parse_symbols(body)


def test_binance_rest_urls_and_price() -> None:
    ex = Binance({"rest_url": "http://127.0.0.1:9/"})
    assert ex.symbols_url() == (
        "http://127.0.0.1:9/api/v3/exchangeInfo?symbolStatus=TRADING&showPermissionSets=false"
    )
    assert ex.price_url("BTCUSDT") == "http://127.0.0.1:9/api/v3/ticker/price?symbol=BTCUSDT"
    body = b'{"symbol":"BTCUSDT","price":"70000.10000000"}'
    assert ex.parse_price(body, "BTCUSDT") == Decimal("70000.10000000")
    for bad in [b'{"symbol":"ETHUSDT","price":"1"}', b'{"symbol":"BTCUSDT","price":"0"}', b"x"]:
        with pytest.raises(ValueError):
            ex.parse_price(bad, "BTCUSDT")


def test_binance_rest_url_is_off_when_empty_or_the_feed_points_elsewhere() -> None:
    assert Binance().symbols_url() is not None  # the real exchange by default
    assert Binance({"rest_url": ""}).symbols_url() is None
    assert Binance({"rest_url": ""}).price_url("BTCUSDT") is None
    # A feed pointed at another server takes no list from the real exchange by default...
    assert Binance({"url": "ws://127.0.0.1:1"}).symbols_url() is None
    # ...unless rest_url names one.
    assert Binance({"url": "ws://127.0.0.1:1", "rest_url": "http://x:1"}).symbols_url()


@pytest.mark.parametrize("value", ["ftp://x", "api.binance.com", "http://"])
def test_binance_rest_url_must_be_http(value: str) -> None:
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="rest_url"):
        Binance({"rest_url": value})


def test_lookup_without_a_list_is_unverified() -> None:
    directory = directory_for("")
    assert directory.lookup("binance", "BTCUSDT") is SymbolCheck.UNVERIFIED
    assert directory.lookup("kraken", "BTC/USD") is SymbolCheck.UNVERIFIED
    assert directory.fetchable() == []


# --- fetch, store, restart ----------------------------------------------------------------------


async def test_fetch_keeps_the_list_and_stores_it(store: Store) -> None:
    await store.bridge.run(symbol_lists.clear)
    with trio.fail_after(20):
        routes = {"/api/v3/exchangeInfo": info_route()}
        async with serve_rest(routes) as server, trio.open_nursery() as nursery:
            directory = directory_for(server.url)
            await nursery.start(run_symbol_directory, directory, store)
            await listed(directory)
            assert directory.lookup("binance", "BTCUSDT") is SymbolCheck.LISTED
            assert directory.lookup("binance", "LUNABUSD") is SymbolCheck.UNLISTED
            assert directory.lookup("binance", "INVENTED1") is SymbolCheck.UNLISTED
            assert directory.lookup("okx", "BTC-USDT") is SymbolCheck.UNVERIFIED
            assert server.requests == [
                "/api/v3/exchangeInfo?symbolStatus=TRADING&showPermissionSets=false"
            ]
            fetches = directory.fetches
            assert fetches.get(exchange="binance", outcome="ok") == 1
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        [(exchange, symbols, fetched_at, source)] = await store.bridge.run(symbol_lists.load_all)
    assert exchange == "binance" and set(symbols) == LISTED
    assert source == f"{server.url}/api/v3/exchangeInfo"  # no query kept
    assert datetime.now(UTC) - fetched_at < timedelta(minutes=1)


async def test_stored_list_survives_a_restart_without_the_server(store: Store) -> None:
    await store.bridge.run(symbol_lists.clear)
    with trio.fail_after(20):
        async with serve_rest({"/api/v3/exchangeInfo": info_route()}) as server:
            async with trio.open_nursery() as nursery:
                first = directory_for(server.url)
                await nursery.start(run_symbol_directory, first, store)
                await listed(first)
                nursery.cancel_scope.cancel()
            gone = server.url
        # The server is gone: the next start knows the list as soon as it reports started, and
        # a list fetched a moment ago is not fetched again before symbols_refresh_s.
        async with trio.open_nursery() as nursery:
            second = directory_for(gone)
            await nursery.start(run_symbol_directory, second, store)
            assert second.lookup("binance", "ETHBTC") is SymbolCheck.LISTED
            assert second.lookup("binance", "INVENTED1") is SymbolCheck.UNLISTED
            await trio.sleep(0.2)
            assert second.fetches.values == {}
            nursery.cancel_scope.cancel()


async def test_a_stale_stored_list_is_fetched_again_and_kept_when_that_fails(
    store: Store,
) -> None:
    await store.bridge.run(symbol_lists.clear)
    await store.bridge.run(symbol_lists.save, "binance", ["BTCUSDT"], "old")
    await store.bridge.run(_age_lists, 7200)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            directory = directory_for("http://127.0.0.1:9")  # nothing listens: refused at once
            await nursery.start(run_symbol_directory, directory, store)
            assert directory.lookup("binance", "BTCUSDT") is SymbolCheck.LISTED
            await until(lambda: directory.fetches.values, 0.01)
            assert directory.fetches.get(exchange="binance", outcome="network") == 1
            assert directory.lookup("binance", "BTCUSDT") is SymbolCheck.LISTED
            nursery.cancel_scope.cancel()


async def _age_lists(con: object, seconds: int) -> None:
    await con.execute(  # type: ignore[attr-defined]
        "UPDATE exchange_symbols SET fetched_at = now() - make_interval(secs => $1)", seconds
    )


async def test_failed_fetches_back_off_with_full_jitter(net_clock: trio.testing.MockClock) -> None:
    times: list[float] = []
    answers = iter([(503, b"busy"), (500, b""), (418, b"teapot")])

    def flaky(target: str) -> RestReply:
        times.append(trio.current_time())
        return next(answers, (200, INFO))

    with trio.fail_after(3600):
        async with (
            serve_rest({"/api/v3/exchangeInfo": flaky}) as server,
            trio.open_nursery() as nursery,
        ):
            directory = directory_for(server.url)
            await nursery.start(run_symbol_directory, directory, None)
            await listed(directory)
            nursery.cancel_scope.cancel()
    assert directory.fetches.get(exchange="binance", outcome="http-status") == 3
    assert directory.fetches.get(exchange="binance", outcome="ok") == 1
    gaps = [b - a for a, b in itertools.pairwise(times)]
    base = SymbolDirectory.BACKOFF_BASE_S
    assert len(gaps) == 3
    for attempt, gap in enumerate(gaps):  # uniform(0, base * 2**attempt), plus the HTTP time
        assert 0 <= gap <= base * 2**attempt + 0.5, (attempt, gaps)


async def test_backoff_is_capped_by_the_refresh_period(net_clock: trio.testing.MockClock) -> None:
    times: list[float] = []

    def down(target: str) -> RestReply:
        times.append(trio.current_time())
        return 502, b"bad gateway"

    with trio.fail_after(100_000):
        async with (
            serve_rest({"/api/v3/exchangeInfo": down}) as server,
            trio.open_nursery() as nursery,
        ):
            directory = directory_for(server.url, symbols_refresh_s=60.0)
            await nursery.start(run_symbol_directory, directory, None)
            await until(lambda: len(times) >= 12, 30)
            nursery.cancel_scope.cancel()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) <= 60.0 + 0.5
    assert directory.lookup("binance", "BTCUSDT") is SymbolCheck.UNVERIFIED


async def test_fetches_wait_with_the_shared_backoff_reset_by_a_good_fetch(
    net_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = spy_on(monkeypatch, symbols)  # engine.backoff.Backoff: tests/test_backoff.py
    times: list[float] = []
    answers = iter([(503, b"busy"), (503, b"busy"), (200, INFO), (503, b"busy")])

    def flaky(target: str) -> RestReply:
        times.append(trio.current_time())
        return next(answers, (200, INFO))

    with trio.fail_after(3600):
        async with (
            serve_rest({"/api/v3/exchangeInfo": flaky}) as server,
            trio.open_nursery() as nursery,
        ):
            directory = directory_for(server.url, symbols_refresh_s=60.0)
            await nursery.start(run_symbol_directory, directory, None)
            await until(lambda: len(times) >= 5, 0.5)
            nursery.cancel_scope.cancel()
    (backoff,) = spy.made  # 5 s doubling, capped by the refresh period
    assert (backoff.base_s, backoff.cap_s, backoff.healthy_after_s) == (5.0, 60.0, 0.0)
    first, second, refresh, third = [b - a for a, b in itertools.pairwise(times[:5])]
    assert len(spy.delays) == 3
    assert first == pytest.approx(spy.delays[0], abs=0.5)  # the waits are the drawn delays
    assert second == pytest.approx(spy.delays[1], abs=0.5)
    assert refresh == pytest.approx(60.0, abs=0.5)
    assert third == pytest.approx(spy.delays[2], abs=0.5)
    assert spy.delays[2] <= 5.0  # the good fetch reset it: from the base again


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        (b"{not json", "malformed"),
        (b'{"symbols": []}', "malformed"),
        (b'{"symbols": [{"symbol": "X", "status": "BREAK"}]}', "malformed"),
        (b"x" * (SymbolDirectory.MAX_LIST_BYTES + 1), "too-large"),
    ],
)
async def test_a_bad_refresh_is_counted_and_the_old_list_kept(
    net_clock: trio.testing.MockClock, body: bytes, outcome: str
) -> None:
    route = {"body": INFO}
    with trio.fail_after(3600):
        async with (
            serve_rest({"/api/v3/exchangeInfo": lambda t: (200, route["body"])}) as server,
            trio.open_nursery() as nursery,
        ):
            directory = directory_for(server.url, symbols_refresh_s=60.0)
            await nursery.start(run_symbol_directory, directory, None)
            await listed(directory)
            route["body"] = body
            await until(lambda: directory.fetches.get(exchange="binance", outcome=outcome), 15)
            assert directory.lookup("binance", "BTCUSDT") is SymbolCheck.LISTED
            assert directory.listed("binance").symbols == LISTED  # type: ignore[union-attr]
            route["body"] = INFO  # the exchange recovers: fetched again after the backoff
            await until(lambda: directory.fetches.get(exchange="binance", outcome="ok") >= 2, 15)
            nursery.cancel_scope.cancel()


async def test_a_server_that_never_answers_is_a_timeout(net_clock: trio.testing.MockClock) -> None:
    async def hang(target: str) -> RestReply:
        await trio.sleep(math.inf)
        raise AssertionError

    with trio.fail_after(3600):
        async with (
            serve_rest({"/api/v3/exchangeInfo": hang}) as server,
            trio.open_nursery() as nursery,
        ):
            directory = directory_for(server.url)
            started = trio.current_time()
            await nursery.start(run_symbol_directory, directory, None)
            assert trio.current_time() == started  # started never waits on the network
            await until(lambda: directory.fetches.values, 5)
            nursery.cancel_scope.cancel()
    assert directory.fetches.get(exchange="binance", outcome="timeout") == 1
    assert trio.current_time() - started >= SymbolDirectory.FETCH_TIMEOUT_S


# --- REST prices --------------------------------------------------------------------------------


async def test_rest_price_is_one_call_cached_a_few_seconds(
    net_clock: trio.testing.MockClock,
) -> None:
    routes = {"/api/v3/ticker/price": ticker_route({"BTCUSDT": "70000.10"})}
    with trio.fail_after(60):
        async with serve_rest(routes) as server, trio.open_nursery() as nursery:
            directory = directory_for(server.url)
            await nursery.start(run_symbol_directory, directory, None)
            assert await directory.rest_price("binance", "BTCUSDT") == Decimal("70000.10")
            assert await directory.rest_price("binance", "BTCUSDT") == Decimal("70000.10")
            assert len(price_asks(server.requests)) == 1
            await trio.sleep(SymbolDirectory.PRICE_CACHE_S + 0.1)
            assert await directory.rest_price("binance", "BTCUSDT") == Decimal("70000.10")
            assert len(price_asks(server.requests)) == 2
            assert await directory.rest_price("binance", "NOSUCH") is None  # a 400
            assert await directory.rest_price("kraken", "BTC/USD") is None  # no such exchange
            assert directory.price_calls.get(exchange="binance", outcome="ok") == 2
            assert directory.price_calls.get(exchange="binance", outcome="failed") == 1
            nursery.cancel_scope.cancel()


async def test_rest_price_times_out_and_bounds_concurrency(
    net_clock: trio.testing.MockClock,
) -> None:
    in_flight = [0, 0]  # now, most

    async def hang(target: str) -> RestReply:
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        try:
            await trio.sleep(math.inf)
        finally:
            in_flight[0] -= 1
        raise AssertionError

    results: dict[str, Decimal | None] = {}
    with trio.fail_after(600):
        async with (
            serve_rest({"/api/v3/ticker/price": hang}) as server,
            trio.open_nursery() as nursery,
        ):
            directory = directory_for(server.url)
            await nursery.start(run_symbol_directory, directory, None)
            started = trio.current_time()

            async def ask(symbol: str) -> None:
                results[symbol] = await directory.rest_price("binance", symbol)

            async with trio.open_nursery() as asks:
                for i in range(10):
                    asks.start_soon(ask, f"SYM{i}USDT")
                asks.start_soon(ask, "SYM0USDT")  # shares the first call
            elapsed = trio.current_time() - started
            nursery.cancel_scope.cancel()
    assert set(results.values()) == {None}
    assert elapsed <= SymbolDirectory.PRICE_TIMEOUT_S + 0.5
    assert in_flight[1] <= SymbolDirectory.PRICE_CONCURRENCY
    assert len(price_asks(server.requests)) <= SymbolDirectory.PRICE_CONCURRENCY


async def test_rest_price_without_a_price_url_or_a_running_directory_is_none() -> None:
    assert await directory_for("").rest_price("binance", "BTCUSDT") is None
    assert await directory_for("http://127.0.0.1:9").rest_price("binance", "BTCUSDT") is None


# --- the feed subscribes only what the list allows ----------------------------------------------


async def test_the_feed_never_subscribes_an_unlisted_symbol(
    net_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with serve_exchange(read_request) as ws, trio.open_nursery() as nursery:
            directory = directory_for("")
            directory.set_list("binance", frozenset({"BTCUSDT"}), datetime.now(UTC), "test")
            demand = ManualDemand()
            states = FeedStates()
            exchange = Binance({"url": ws.url})
            feed = ExchangeFeed(
                exchange, directory.filtered(demand), states.get("binance"), Metrics()
            )
            send, _recv = trio.open_memory_channel[Tick](100)
            await nursery.start(feed.run, send)
            invented = {f"FAKE{i}USDT" for i in range(5000)}
            demand.set("binance", {"BTCUSDT", *invented})
            await ws.wait_until(lambda: ws.subscribed() == {"BTCUSDT"})
            assert len(ws.connections) == 1
            assert states.get("binance").wanted == {"BTCUSDT"}
            # The list grows: the feed follows it without a change of demand.
            directory.set_list(
                "binance", frozenset({"BTCUSDT", "FAKE1USDT"}), datetime.now(UTC), "test"
            )
            await ws.wait_until(lambda: ws.subscribed() == {"BTCUSDT", "FAKE1USDT"})
            # And the demand still moves the feed.
            demand.set("binance", {"FAKE1USDT"})
            await ws.wait_until(lambda: ws.subscribed() == {"FAKE1USDT"})
            assert len(ws.connections) == 1
            nursery.cancel_scope.cancel()


def test_the_filtered_demand_filters_changes_not_copies() -> None:
    """``FilteredDemand.changes_since`` hands out the demand's changes less the unlisted symbols
    (O(change)), and a change of the list as the difference it makes; a reader that applies
    them ends with ``symbols``."""
    from engine.book import demand as demand_module

    directory = directory_for("")
    demand = ManualDemand()
    filtered = directory.filtered(demand)
    held: set[str] = set()
    version = 0

    def read() -> None:
        nonlocal version
        changes = filtered.changes_since("binance", version)
        changes.apply_to(held)
        version = changes.version
        assert held == filtered.symbols("binance")

    demand.set("binance", {"BTCUSDT", "FAKEUSDT"})
    read()
    assert held == {"BTCUSDT", "FAKEUSDT"}  # no list yet: unverified symbols pass
    directory.set_list("binance", frozenset({"BTCUSDT", "ETHUSDT"}), datetime.now(UTC), "test")
    changes = filtered.changes_since("binance", version)
    assert changes.removed == {"FAKEUSDT"} and not changes.added and not changes.snapshot
    read()
    demand.add("binance", "ETHUSDT")
    demand.add("binance", "MOREUSDT")  # unlisted: never handed out
    changes = filtered.changes_since("binance", version)
    assert changes.added == {"ETHUSDT"} and not changes.removed
    read()
    before = filtered.version("binance")
    demand.discard("binance", "MOREUSDT")
    assert filtered.version("binance") == before  # an unlisted symbol's change moves nothing
    demand.discard("binance", "BTCUSDT")
    read()
    assert held == {"ETHUSDT"}
    for n in range(2 * demand_module.LOG_LIMIT + 2):  # the filter falls behind the demand's log
        demand.add("binance", f"X{n}USDT")
    demand.add("binance", "BTCUSDT")
    read()
    assert held == {"ETHUSDT", "BTCUSDT"}
