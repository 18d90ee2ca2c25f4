"""engine/feeds/testing/: the conformance kit passes Binance and catches a broken exchange."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal

import msgspec
import pytest
import trio

from engine.errors import BadFrame, SubscriptionRejected
from engine.feeds.binance import Binance
from engine.feeds.testing import (
    ManualDemand,
    Request,
    Tick,
    TradeMaker,
    check_heartbeat,
    check_rejection,
    check_symbols_per_message,
    find_frames,
    infer_read_request,
    read_binance_request,
    run_conformance,
)

from .conftest import DATA


async def test_binance_passes_the_conversation() -> None:
    with trio.fail_after(20):
        report = await run_conformance(Binance, DATA / "binance.jsonl", read_binance_request)
    assert sorted((t.symbol, t.price) for t in report.ticks) == [
        ("BNBBTC", Decimal("0.001")),
        ("BNBBTC", Decimal("0.001")),
        ("BNBBTC", Decimal("0.0025")),
        ("BNBUSDT", Decimal("25.35855000")),
    ]
    ops = [(r.op, set(r.symbols)) for r in report.requests]
    assert ops[0] == ("subscribe", {"BNBBTC", "BNBUSDT"})
    assert ("unsubscribe", {"BNBBTC"}) in ops and ("unsubscribe", {"BNBUSDT"}) in ops


class NeverUnsubscribes(Binance):
    def unsubscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        return []

    def unsubscribe_request(self, symbols: Sequence[str], request_id: int) -> list[str]:
        return []


async def test_a_broken_exchange_does_not_pass() -> None:
    with pytest.raises(trio.TooSlowError), trio.fail_after(3):
        await run_conformance(NeverUnsubscribes, DATA / "binance.jsonl", read_binance_request)


def test_manual_demand_fixture_is_provided_by_the_kit(manual_demand: ManualDemand) -> None:
    manual_demand.set("binance", ["BTCUSDT"])
    assert manual_demand.symbols("binance") == {"BTCUSDT"}
    assert manual_demand.version("binance") == 1 and manual_demand.version("kraken") == 0


def test_frames_by_symbol_drops_control_and_error_frames(binance_frames: list[str]) -> None:
    from engine.feeds.testing import frames_by_symbol

    error = '{"error":{"code":2,"msg":"Invalid request"},"id":1}'
    grouped = frames_by_symbol(Binance(), [*binance_frames, error, "not json"])
    assert sorted(grouped) == ["BNBBTC", "BNBUSDT"]
    assert len(grouped["BNBBTC"]) == 3 and len(grouped["BNBUSDT"]) == 1


# -------------------------------------------------------------------------------------------------
# the kit's checks of requests, heartbeats and rejections, on Binance and on broken exchanges
# -------------------------------------------------------------------------------------------------


def read_refusing_binance(message: str) -> Request | None:
    """Binance's server side that refuses a request naming ``NOPE``: the error reply names
    no symbol, only the request's id (as Binance's do)."""
    request = read_binance_request(message)
    if request is None or "NOPE" not in request.symbols:
        return request
    error = json.dumps(
        {"error": {"code": 2, "msg": "Invalid request"}, "id": json.loads(message)["id"]}
    )
    return Request(request.op, (), (error,))


def test_binance_keeps_to_symbols_per_message() -> None:
    requests = check_symbols_per_message(Binance(), read_binance_request)
    assert [len(r.symbols) for r in requests] == [200, 200, 1, 200, 200, 1]


class Greedy(Binance):
    """Puts every symbol in one frame, whatever ``symbols_per_message`` says."""

    def subscribe_request(self, symbols: Sequence[str], request_id: int) -> list[str]:
        params = [f"{s.lower()}@trade" for s in symbols]
        return [json.dumps({"method": "SUBSCRIBE", "params": params, "id": request_id})]


def test_a_frame_over_the_limit_fails_the_check() -> None:
    with pytest.raises(AssertionError, match="names 401 symbols, more than symbols_per_message"):
        check_symbols_per_message(Greedy(), read_binance_request)


def test_binance_has_no_heartbeat_to_send() -> None:
    assert check_heartbeat(Binance()) is None


class PingsButNeverSends(Binance):
    def heartbeat_frame(self) -> str:
        return '{"method":"ping"}'


class PingsTooRarely(PingsButNeverSends):
    heartbeat_interval_s = 300.0


def test_heartbeat_rules_catch_a_frame_never_sent_and_an_interval_past_staleness() -> None:
    with pytest.raises(AssertionError, match="set heartbeat_interval_s"):
        check_heartbeat(PingsButNeverSends())
    with pytest.raises(AssertionError, match="a quiet connection would look stale"):
        check_heartbeat(PingsTooRarely())
    with pytest.raises(BadFrame):  # an answer parse refuses would be counted as a bad frame
        check_heartbeat(PingsTooRarely({"stale_after_s": 600}), ["pong?"])


def test_a_rejection_maps_to_the_request_id() -> None:
    [rejected] = check_rejection(Binance(), read_refusing_binance, ["BTCUSDT", "NOPE"])
    assert (rejected.request_id, rejected.symbols) == (7, ())


class ForgetsTheId(Binance):
    def parse(self, frame: str | bytes, received_ns: int) -> list[Tick]:
        try:
            return super().parse(frame, received_ns)
        except SubscriptionRejected as exc:
            raise SubscriptionRejected(exc.reason) from None


def test_a_rejection_that_names_nothing_fails_unless_the_exchange_cannot() -> None:
    with pytest.raises(AssertionError, match="names neither request 7 nor its symbols"):
        check_rejection(ForgetsTheId(), read_refusing_binance, ["NOPE"])
    assert check_rejection(ForgetsTheId(), read_refusing_binance, ["NOPE"], anonymous=True)


# -------------------------------------------------------------------------------------------------
# the pieces of ``triggerbook plugins serve``
# -------------------------------------------------------------------------------------------------


class TextProtocol(Binance):
    name = "textual"

    def subscribe_request(self, symbols: Sequence[str], request_id: int) -> list[str]:
        return [f"SUB {request_id} {' '.join(symbols)}"]


def test_infer_read_request_reads_what_the_exchange_writes_and_refuses_what_it_cannot() -> None:
    class Pinging(Binance):
        heartbeat_interval_s = 10.0

        def heartbeat_frame(self) -> str:
            return '{"method":"ping"}'

    read = infer_read_request(Pinging(), pong='{"result":"pong"}')
    [sub] = Binance().subscribe_request(["BTCUSDT", "ETHUSDT"], 3)
    assert read(sub) == Request("subscribe", ("BTCUSDT", "ETHUSDT"))
    [unsub] = Binance().unsubscribe_frames(["BTCUSDT"])
    assert read(unsub) == Request("unsubscribe", ("BTCUSDT",))
    assert read('{"method":"ping"}') == Request("ping", (), ('{"result":"pong"}',))
    assert read("garbage") == Request("unknown")
    with pytest.raises(ValueError, match="not JSON: write a read_request"):
        infer_read_request(TextProtocol())
    assert find_frames(TextProtocol()) is None  # no tests/data/textual.jsonl anywhere near


def test_made_up_trades_are_read_back_exactly_or_not_sent(binance_frames: list[str]) -> None:
    maker = TradeMaker(Binance(), binance_frames, seed=1)
    prices = []
    for _ in range(20):
        frame = maker.trade("ETHUSDT")
        assert frame is not None
        [tick] = Binance().parse(frame, 0)
        assert tick.symbol == "ETHUSDT" and tick.exchange_time_ms > 1_700_000_000_000
        prices.append(tick.price)
    assert len(set(prices)) > 10 and all(
        abs(p - Decimal("0.001")) < Decimal("0.0001") for p in prices
    )

    class Misreads(Binance):
        def parse(self, frame: str | bytes, received_ns: int) -> list[Tick]:
            return [
                msgspec.structs.replace(t, symbol="BNBBTC")
                for t in super().parse(frame, received_ns)
            ]

    assert TradeMaker(Misreads(), binance_frames).trade("ETHUSDT") is None
    assert TradeMaker(Binance(), ["not json"]).trade("ETHUSDT") is None
