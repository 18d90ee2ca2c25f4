"""engine/feeds/runner.py against a local server speaking Binance's protocol."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from decimal import Decimal

import pytest
import trio
import trio.testing

from engine.errors import PluginError
from engine.feeds import runner
from engine.feeds.binance import Binance
from engine.feeds.runner import run_feeds
from engine.feeds.session import Dedupe, Session, SkippedFrames, Wanted
from engine.feeds.status import FeedStates
from engine.feeds.testing import ExchangeServer, ManualDemand, Request, read_binance_request
from engine.metrics import Metrics
from engine.model import Tick
from engine.plugins.registry import load_registry
from tests.test_backoff import spy_on

from .conftest import DATA, eventually, start_harness, trade


async def test_subscribes_only_demanded_symbols_and_follows_demand() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery)
            assert h.server.connections == []  # nothing demanded: no connection at all
            h.want("BTCUSDT")
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT"})
            await h.server.send_for("BTCUSDT", trade("BTCUSDT", "70000.10", 1700000000001))
            (tick,) = await h.ticks(1)
            assert (tick.exchange, tick.symbol, tick.price, tick.exchange_time_ms) == (
                "binance",
                "BTCUSDT",
                Decimal("70000.10"),
                1700000000001,
            )
            assert str(tick.price) == "70000.10" and tick.received_ns > 0
            h.want("BTCUSDT", "ETHUSDT")
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT", "ETHUSDT"})
            h.want("ETHUSDT")
            await h.server.wait_until(lambda: h.server.subscribed() == {"ETHUSDT"})
            await eventually(lambda: h.state.symbols == {"ETHUSDT"})
            assert h.state.connected and h.state.since is not None
            assert len(h.server.connections) == 1
            h.want()
            await h.server.wait_until(lambda: not h.server.live)
            await eventually(lambda: not h.state.connected)
            assert [(r.op, r.symbols) for r in h.server.requests] == [
                ("subscribe", ("BTCUSDT",)),
                ("subscribe", ("ETHUSDT",)),
                ("unsubscribe", ("BTCUSDT",)),
                ("unsubscribe", ("ETHUSDT",)),
            ]
            assert h.server.connections[0].path == "/stream"
            assert h.state.reconnects == 0
            nursery.cancel_scope.cancel()


class Sharded(Binance):
    max_streams_per_connection = 2
    symbols_per_message = 1
    max_messages_per_second = 4.0


async def test_connections_cap_batches_and_rate(net_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery, Sharded)
            symbols = ["AAA", "BBB", "CCC", "DDD", "EEE"]
            h.want(*symbols)
            await h.server.wait_until(lambda: h.server.subscribed() == set(symbols))
            assert sorted(len(c.subscribed) for c in h.server.live) == [1, 2, 2]
            for conn in h.server.connections:
                gaps = [b - a for a, b in zip(conn.times, conn.times[1:], strict=False)]
                assert all(gap >= 0.25 - 1e-9 for gap in gaps), gaps  # 4 messages/s at most
                assert all(len(json.loads(m)["params"]) == 1 for m in conn.received)
            h.want("AAA", "BBB", "CCC", "DDD", "EEE", "FFF")  # fills the slot with room
            await h.server.wait_until(lambda: "FFF" in h.server.subscribed())
            assert len(h.server.live) == 3
            h.want("EEE", "FFF")
            await h.server.wait_until(lambda: h.server.subscribed() == {"EEE", "FFF"})
            await h.server.wait_until(lambda: len(h.server.live) == 1)
            nursery.cancel_scope.cancel()


async def test_drop_and_reconnect_with_backoff(net_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(300):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery)
            h.want("BTCUSDT")
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT"})
            dropped_at = trio.current_time()
            await h.server.close(1011, "going away")
            await h.server.wait_until(
                lambda: len(h.server.connections) == 2 and h.server.subscribed() == {"BTCUSDT"}
            )
            assert trio.current_time() - dropped_at <= h.exchange.backoff_base_s + 0.01
            assert h.state.reconnects == 1
            assert h.metrics.feed_reconnects.get(exchange="binance") == 1
            assert "ConnectionClosed" in (h.state.last_error or "")

            # A flapping exchange: refused handshakes back off exponentially up to the cap.
            h.server.refuse = True
            refused_at = trio.current_time()
            await h.server.close()
            await h.server.wait_until(lambda: h.server.refused >= 7)
            await eventually(lambda: h.state.reconnects >= 9)
            assert not h.state.connected
            ceilings = [min(30.0, 0.5 * 2**n) for n in range(9)]
            assert trio.current_time() - refused_at <= sum(ceilings) + 1
            h.server.refuse = False
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT"})
            await eventually(lambda: h.state.connected)
            await h.server.send_for("BTCUSDT", trade("BTCUSDT", "1.5", 2))
            assert (await h.ticks(1))[0].price == Decimal("1.5")
            nursery.cancel_scope.cancel()


class QuicklyHealthy(Binance):
    healthy_after_s = 5.0


async def test_reconnects_wait_with_the_shared_backoff_reset_once_healthy(
    net_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = spy_on(monkeypatch, runner)  # engine.backoff.Backoff, its properties: tests/test_backoff
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery, QuicklyHealthy)
            h.want("BTCUSDT")
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT"})
            (backoff,) = spy.made  # one per slot, with the exchange's numbers
            assert (backoff.base_s, backoff.cap_s, backoff.healthy_after_s) == (0.5, 30.0, 5.0)
            for n in (1, 2, 3):  # dropped at once, never healthy: the ceiling keeps doubling
                dropped_at = trio.current_time()
                await h.server.close(1011, "going away")
                await h.server.wait_until(
                    lambda n=n: len(h.server.connections) == n + 1 and bool(h.server.live)
                )
                assert backoff.attempt == n and len(spy.delays) == n
                assert trio.current_time() - dropped_at <= spy.delays[-1] + 0.1
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT"})
            await trio.sleep(5.0)  # up for healthy_after_s: the next drop starts from the base
            await h.server.close(1011, "going away")
            await h.server.wait_until(lambda: len(h.server.connections) == 5)
            assert backoff.attempt == 1 and spy.delays[-1] <= 0.5
            assert h.state.reconnects == 4
            nursery.cancel_scope.cancel()


class Stale(Binance):
    stale_after_s = 5.0


async def test_stale_feed_reconnects(net_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery, Stale)
            h.want("BTCUSDT")
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT"})
            start = trio.current_time()
            await h.server.wait_until(lambda: len(h.server.connections) == 2)
            assert trio.current_time() - start >= 5.0
            await eventually(lambda: h.state.reconnects == 1)
            assert "FeedStale" in (h.state.last_error or "")
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT"})
            nursery.cancel_scope.cancel()


async def test_pings_are_answered_and_frames_keep_flowing(
    net_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(300):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery)
            h.want("BTCUSDT")
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT"})
            for n in range(5):  # a server ping every 20 s, as Binance does, and a trade
                await trio.sleep(20)
                await h.server.ping()
                await h.server.send_for("BTCUSDT", trade("BTCUSDT", f"{100 + n}", n))
            assert [t.price for t in await h.ticks(5)] == [Decimal(100 + n) for n in range(5)]
            assert len(h.server.connections) == 1 and h.state.reconnects == 0
            nursery.cancel_scope.cancel()


async def test_bad_frames_are_counted_logged_once_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="engine.feeds.runner")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery)
            h.want("BTCUSDT")
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT"})
            await h.server.garbage()  # not json, {} and [1, 2]
            await h.server.send(b"\xff binary garbage")
            await h.server.send_for("BTCUSDT", trade("BTCUSDT", "abc", 1))
            await h.server.send_for("BTCUSDT", trade("BTCUSDT", "70000", 2))
            (tick,) = await h.ticks(1)
            assert tick.price == Decimal("70000")
            skipped = h.metrics.frames_skipped
            assert skipped.get(exchange="binance", kind="not-json") == 2
            assert skipped.get(exchange="binance", kind="unknown-event") == 2
            assert skipped.get(exchange="binance", kind="bad-price") == 1
            assert len(h.server.connections) == 1 and h.state.connected
            logged = [r for r in caplog.records if "bad frame" in r.getMessage()]
            assert len(logged) == 3  # once per kind, with a sample
            assert any("not json {" in r.getMessage() for r in logged)
            nursery.cancel_scope.cancel()


def read_request_refusing_nope(message: str) -> Request | None:
    request = read_binance_request(message)
    if request is not None and "NOPE" in request.symbols:
        msg_id = json.loads(message)["id"]
        error = {"error": {"code": 2, "msg": "Invalid symbol"}, "id": msg_id}
        return Request("rejected", request.symbols, (json.dumps(error),))
    return request


async def test_subscription_error_is_reported_and_not_retried() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery)
            h.server.read_request = read_request_refusing_nope
            h.want("NOPE")
            await eventually(lambda: "NOPE" in h.state.rejected)
            assert "Invalid symbol" in h.state.rejected["NOPE"]
            assert h.states.ready() == (True, {})  # reported on /readyz, not a readiness failure
            assert h.state.as_dict()["rejected"] == {"NOPE": "code 2: Invalid symbol"}
            assert h.states.rejection("binance", "NOPE") == "code 2: Invalid symbol"
            assert h.states.rejection("binance", "BTCUSDT") is None
            assert h.states.rejection("kraken", "NOPE") is None
            h.want("NOPE", "BTCUSDT")
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT"})
            assert h.state.symbols == {"BTCUSDT"}
            assert sum("nope@trade" in m for m in h.server.received) == 1  # not asked again
            h.want("BTCUSDT")
            await eventually(lambda: not h.state.rejected)  # forgotten once demand drops it
            assert h.states.rejection("binance", "NOPE") is None
            nursery.cancel_scope.cancel()


class Forced(Binance):
    forced_disconnect_after_s = 20.0
    handover_lead_s = 5.0
    handover_overlap_s = 2.0


async def test_forced_disconnect_handover_misses_and_repeats_nothing(
    net_clock: trio.testing.MockClock,
) -> None:
    sent: list[int] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery, Forced)
            h.want("BTCUSDT")
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT"})
            first = h.server.connections[0]

            async def market() -> None:  # the exchange: a trade every 0.5 s on every connection
                n = 0
                while True:
                    n += 1
                    sent.append(n)
                    await h.server.send_for("BTCUSDT", trade("BTCUSDT", f"{n}.5", n, n))
                    await trio.sleep(0.5)

            async def enforce_24h() -> None:  # the exchange drops the connection at its deadline
                await trio.sleep_until(first.opened_at + Forced.forced_disconnect_after_s)
                if first.open:
                    await first.ws.aclose(1000, "24h")

            nursery.start_soon(market)
            nursery.start_soon(enforce_24h)
            await trio.sleep_until(first.opened_at + 25.0)
            sent_so_far = list(sent)
            got = await h.ticks(len(sent_so_far))
            nursery.cancel_scope.cancel()
    assert [t.exchange_time_ms for t in got] == sent_so_far  # each trade once, in order, no gap
    assert [t.price for t in got] == [Decimal(f"{n}.5") for n in sent_so_far]
    assert h.recv.statistics().current_buffer_used <= 1  # no duplicate waiting behind them
    assert len(h.server.connections) == 2
    second = h.server.connections[1]
    assert first.opened_at + 14.9 <= second.opened_at <= first.opened_at + 16  # 5 s ahead
    assert not first.open  # closed by us after the overlap, before the 24 h mark
    assert h.state.reconnects == 0


class Broken(Binance):
    def parse(self, frame: str | bytes, received_ns: int) -> list[Tick]:
        raise ValueError("a bug, not a network problem")


async def test_unexpected_errors_propagate() -> None:
    caught = []
    with trio.fail_after(10):
        try:
            async with trio.open_nursery() as nursery:
                h = await start_harness(nursery, Broken)
                h.want("BTCUSDT")
        except* ValueError as group:
            caught.append(group)
    assert caught


async def test_run_feeds_starts_exchanges_and_sources(binance_server: ExchangeServer) -> None:
    registry = load_registry(entry_points=False)
    environ = {
        "TRIGGERBOOK_FEEDS_BINANCE_URL": binance_server.url,
        "TRIGGERBOOK_FEEDS_REPLAY_ENABLED": "true",
        "TRIGGERBOOK_FEEDS_REPLAY_FILE": str(DATA / "replay.jsonl"),
        "TRIGGERBOOK_FEEDS_REPLAY_SPEED": "0",
    }
    config = registry.load_config(environ=environ)
    assert config.enabled_feeds() == ["binance", "replay"]
    demand, states, metrics = ManualDemand(), FeedStates(), Metrics()
    send, recv = trio.open_memory_channel[Tick](0)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_feeds, config, registry, send, demand, states, metrics)
            demand.set("binance", ["BTCUSDT"])
            await binance_server.wait_until(lambda: binance_server.subscribed() == {"BTCUSDT"})
            await binance_server.send_for("BTCUSDT", trade("BTCUSDT", "42", 1))
            seen = set()
            async for tick in recv:
                seen.add((tick.exchange, tick.symbol))
                if tick.price == Decimal("42"):
                    break
            assert states.get("binance").connected and states.get("replay").connected
            assert "triggerbook_feed_connected" in metrics.render()
            nursery.cancel_scope.cancel()


async def test_run_feeds_refuses_a_feed_no_plugin_provides() -> None:
    registry = load_registry(entry_points=False)
    config = registry.load_config(environ={})
    del registry.exchanges["binance"]  # enabled in the config, provided by no plugin
    send, _ = trio.open_memory_channel[Tick](1)
    with pytest.raises(PluginError, match="no plugin provides it"):
        await run_feeds(config, registry, send, ManualDemand(), FeedStates(), Metrics())


async def test_back_pressure_is_not_staleness(net_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(300):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery, Stale)  # stale after 5 s
            h.send, h.recv = trio.open_memory_channel[Tick](0)  # every tick waits for the book
            h.feed.ticks = h.send
            h.want("BTCUSDT")
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT"})
            for n in range(3):
                await h.server.send_for("BTCUSDT", trade("BTCUSDT", f"{n + 1}", n))
            await trio.sleep(30)  # the book is busy for 30 s: the feed waits, it is not stale
            assert [t.price for t in await h.ticks(3)] == [Decimal(1), Decimal(2), Decimal(3)]
            assert h.state.reconnects == 0 and len(h.server.connections) == 1
            nursery.cancel_scope.cancel()


async def test_a_refused_connection_logs_one_line_with_the_real_cause(
    net_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A port nobody listens on: each attempt is one warning naming "Connection refused" (not
    a traceback, not an empty ``HandshakeError:``), and /readyz's last_error says the same."""
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()  # the port is free: connecting to it is refused
    states, metrics = FeedStates(), Metrics()
    state = states.get("binance")
    demand = ManualDemand()
    demand.set("binance", ["BTCUSDT"])
    feed = runner.ExchangeFeed(Binance({"url": f"ws://127.0.0.1:{port}"}), demand, state, metrics)
    send, _recv = trio.open_memory_channel[Tick](10)
    with trio.fail_after(120), caplog.at_level(logging.WARNING, logger="engine.feeds.runner"):
        async with trio.open_nursery() as nursery:
            await nursery.start(feed.run, send)
            await eventually(lambda: state.reconnects >= 3)
            nursery.cancel_scope.cancel()
    failures = [r for r in caplog.records if "connection failed" in r.getMessage()]
    assert len(failures) >= 3
    assert all(r.exc_info is None for r in failures)  # no traceback per attempt
    assert "Connection refused" in failures[0].getMessage()
    assert state.last_error is not None and "Connection refused" in state.last_error
    assert "HandshakeError" in state.last_error


# Every kind of frame the receive loop must treat as Session.frame_ticks alone does: trades (hot
# path), an ack, garbage, a bad price, an unknown event, a tick out of range, a time out of range.
MIXED_FRAMES = [
    trade("BTCUSDT", "70000.10", 1_700_000_000_001),
    '{"result": null, "id": 99}',
    "not json at all",
    trade("BTCUSDT", "x", 1_700_000_000_002),
    '{"stream": "btcusdt@kline_1m", "data": {}}',
    trade("BTCUSDT", "1E+30", 1_700_000_000_003),
    trade("ETHUSDT", "3500.5", 10_000_000_000_000_000),
    trade("ETHUSDT", "3500.50", 1_700_000_000_004),
    trade("BTCUSDT", "0.000000000000000001", 1_700_000_000_005),
]


def _plain_path(frames: list[str]) -> tuple[list[tuple[str, Decimal, int]], dict[str, float]]:
    """The frames through ``Session.frame_ticks`` called directly, without a socket."""
    metrics = Metrics()
    exchange = Binance({"url": "ws://127.0.0.1:1"})
    session = Session(
        exchange,
        FeedStates().get("binance"),
        trio.open_memory_channel[Tick](0)[0],
        SkippedFrames("binance", metrics),
        Dedupe(),
        Wanted(),
    )
    ticks = [t for n, frame in enumerate(frames) for t in session.frame_ticks(frame, n + 1)]
    return [(t.symbol, t.price, t.exchange_time_ms) for t in ticks], _skipped(metrics)


def _skipped(metrics: Metrics) -> dict[str, float]:
    return {
        kind: metrics.frames_skipped.get(exchange="binance", kind=kind)
        for kind in ("not-json", "bad-price", "unknown-event", "out-of-range", "bad-field")
    }


async def test_the_receive_loop_gives_what_the_one_frame_path_gives() -> None:
    """Every frame takes ``Session.frame_ticks`` (parse, the inline range check, the dedupe);
    through a socket and the receive loop's holding of ticks, the same frames give the same
    ticks and count the same skipped frames as calling it directly."""
    expected_ticks, expected_skipped = _plain_path(MIXED_FRAMES)
    assert len(expected_ticks) == 3 and sum(expected_skipped.values()) == 5  # the test bites
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery)
            h.want("BTCUSDT", "ETHUSDT")
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT", "ETHUSDT"})
            for frame in MIXED_FRAMES:
                await h.server.send(frame)
            ticks = await h.ticks(len(expected_ticks))
            await eventually(lambda: _skipped(h.metrics) == expected_skipped)
            nursery.cancel_scope.cancel()
    assert [(t.symbol, t.price, t.exchange_time_ms) for t in ticks] == expected_ticks
    assert [str(t.price) for t in ticks] == [str(p) for _, p, _ in expected_ticks]


class Unsplit(Binance):
    """An exchange that puts every symbol it is given in one frame, and records each request:
    the runner must cut the batches itself."""

    symbols_per_message = 3
    calls: list[tuple[str, tuple[str, ...], int]]

    def subscribe_request(self, symbols: Sequence[str], request_id: int) -> list[str]:
        self.calls.append(("subscribe", tuple(symbols), request_id))
        return [json.dumps({"method": "SUBSCRIBE", "params": _streams(symbols), "id": request_id})]

    def unsubscribe_request(self, symbols: Sequence[str], request_id: int) -> list[str]:
        self.calls.append(("unsubscribe", tuple(symbols), request_id))
        params = _streams(symbols)
        return [json.dumps({"method": "UNSUBSCRIBE", "params": params, "id": request_id})]


def _streams(symbols: Sequence[str]) -> list[str]:
    return [f"{s.lower()}@trade" for s in symbols]


async def test_the_runner_cuts_batches_and_numbers_each_request() -> None:
    Unsplit.calls = []
    symbols = [f"S{n:02}USDT" for n in range(8)]
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery, Unsplit)
            h.want(*symbols)
            await h.server.wait_until(lambda: h.server.subscribed() == set(symbols))
            h.want(*symbols[:1])
            await h.server.wait_until(lambda: h.server.subscribed() == set(symbols[:1]))
            await eventually(lambda: h.state.symbols == set(symbols[:1]))
            nursery.cancel_scope.cancel()
    calls = Unsplit.calls
    assert all(1 <= len(batch) <= 3 for _, batch, _ in calls)
    assert [n for _, _, n in calls] == list(range(1, len(calls) + 1))  # unique on the connection
    subscribed = [s for op, batch, _ in calls if op == "subscribe" for s in batch]
    unsubscribed = [s for op, batch, _ in calls if op == "unsubscribe" for s in batch]
    assert sorted(subscribed) == symbols and sorted(unsubscribed) == symbols[1:]
    assert all(len(json.loads(m)["params"]) <= 3 for m in h.server.received)


def _refusing(refusal: dict[str, object], times: int) -> Callable[[str], Request | None]:
    """A Binance reader that answers the first ``times`` subscribes of ``HUSH`` with
    ``refusal`` (an error reply without the request's id) instead of an ack."""
    left = [times]

    def read(message: str) -> Request | None:
        request = read_binance_request(message)
        if request is not None and "HUSH" in request.symbols and left[0] > 0:
            left[0] -= 1
            return Request("rejected", request.symbols, (json.dumps(refusal),))
        return request

    return read


async def test_a_rejection_naming_nothing_makes_the_feed_unready_until_the_next_connection(
    net_clock: trio.testing.MockClock,
) -> None:
    """An error reply with neither symbols nor a request id the runner knows: not lost (it
    used to be only logged while /readyz said ready). The feed is not ready, with the
    exchange's reason, until that connection is replaced; no symbol is blamed for it."""
    refusal = {"error": {"code": -1003, "msg": "Too many requests"}}
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery)
            h.server.read_request = _refusing(refusal, times=1)
            h.want("HUSH")
            await eventually(lambda: bool(h.state.unattributed))
            ready, reasons = h.states.ready()
            assert not ready and "Too many requests" in reasons["binance"]
            assert "without naming its symbols" in reasons["binance"]
            assert h.state.rejected == {}  # nobody to blame
            assert h.state.as_dict()["unattributed_rejections"] == ["code -1003: Too many requests"]
            await h.server.close(1011, "going away")  # the next connection subscribes afresh
            await h.server.wait_until(lambda: len(h.server.connections) == 2)
            await h.server.wait_until(lambda: h.server.subscribed() == {"HUSH"})
            await eventually(lambda: h.states.ready() == (True, {}))
            assert h.state.symbols == {"HUSH"}
            nursery.cancel_scope.cancel()


async def test_a_rejection_carrying_only_a_request_id_names_that_requests_symbols() -> None:
    """The reply names no symbol but echoes the request's id: the runner maps it to the batch
    it numbered so, and those symbols do not count as subscribed."""
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery, Unsplit)
            Unsplit.calls = []

            def read(message: str) -> Request | None:
                request = read_binance_request(message)
                if request is not None and "NOPE" in request.symbols:
                    error = {
                        "error": {"code": 2, "msg": "Invalid"},
                        "id": json.loads(message)["id"],
                    }
                    return Request("rejected", request.symbols, (json.dumps(error),))
                return request

            h.server.read_request = read
            h.want("AAAUSDT", "BBBUSDT", "CCCUSDT", "NOPE")  # two batches: 3 + 1
            await eventually(lambda: "NOPE" in h.state.rejected)
            await h.server.wait_until(
                lambda: h.server.subscribed() == {"AAAUSDT", "BBBUSDT", "CCCUSDT"}
            )
            assert set(h.state.rejected) == {"NOPE"}
            assert h.state.symbols == {"AAAUSDT", "BBBUSDT", "CCCUSDT"}
            assert h.states.ready() == (True, {}) and not h.state.unattributed
            nursery.cancel_scope.cancel()
