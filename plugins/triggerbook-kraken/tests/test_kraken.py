"""The Kraken v2 exchange on frames copied from its documentation (``data/kraken.jsonl``)."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
from triggerbook_kraken import Kraken

from engine.errors import SubscriptionRejected
from engine.feeds.parsing import edit_frame
from engine.feeds.testing import check_bad_frames, check_parse
from engine.model import Tick

FRAMES = (Path(__file__).parent / "data" / "kraken.jsonl").read_text().splitlines()
RECEIVED = 987_654_321
ALGO = Tick("kraken", "ALGO/USD", Decimal("0.10035"), 1695632671742, RECEIVED)

# One entry per line of kraken.jsonl but the last (a failed subscribe): the ticks that line gives.
EXPECTED: list[list[Tick]] = [
    [],  # status
    [],  # trade subscribe ack
    [],  # trade snapshot: history, not a price now
    [Tick("kraken", "MATIC/USD", Decimal("0.5117"), 1695628177708, RECEIVED)],
    [],  # heartbeat
    [],  # ticker subscribe ack
    [ALGO],  # ticker snapshot: the current last price
    [ALGO],  # ticker update
    [],  # pong
    [],  # unsubscribe ack
]
*DATA, FAILED = FRAMES


@pytest.mark.parametrize(("frame", "expected"), list(zip(DATA, EXPECTED, strict=True)))
def test_recorded_frames_give_exact_ticks(frame: str, expected: list[Tick]) -> None:
    assert Kraken().parse(frame, RECEIVED) == expected
    # JSON numbers keep their digits: 0.5117, not 0.51170000000000004
    check_parse(Kraken(), [frame], expected)


def test_the_recorded_failed_subscribe_names_the_pair() -> None:
    with pytest.raises(SubscriptionRejected) as info:
        Kraken().parse(FAILED, RECEIVED)
    assert info.value.symbols == ("FOO/USD",)
    assert info.value.request_id == 69  # the recording's req_id: the runner's number
    assert "Currency pair not supported" in info.value.reason


def test_a_trade_frame_with_many_trades_gives_a_tick_each() -> None:
    frame = json.loads(FRAMES[2])
    frame["type"] = "update"
    ticks = Kraken().parse(json.dumps(frame), 1)
    assert [(t.price, t.exchange_time_ms) for t in ticks] == [
        (Decimal("0.5147"), 1695628116925),
        (Decimal("0.5147"), 1695628176925),
    ]


def test_a_failed_unsubscribe_names_the_symbol_from_its_result() -> None:
    frame = {
        "method": "unsubscribe",
        "success": False,
        "error": "Subscription Not Found",
        "result": {"channel": "trade", "symbol": "ETH/USD"},
    }
    with pytest.raises(SubscriptionRejected) as info:
        Kraken().parse(json.dumps(frame), 0)
    assert info.value.symbols == ("ETH/USD",)


def test_a_failed_request_without_symbol_or_words_still_rejects() -> None:
    with pytest.raises(SubscriptionRejected) as info:
        Kraken().parse('{"method": "subscribe", "success": false, "result": "?"}', 0)
    assert info.value.symbols == ()
    assert info.value.reason == "request failed"


# The recorded trade update with some fields of its entry changed (None removes one).
_update = partial(edit_frame, FRAMES[3], ("data", 0))


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ("garbage", "not-json"),
        (b"\x00\x01", "not-json"),
        ('{"channel": "trade"', "not-json"),
        ("[]", "unknown-event"),
        ('"heartbeat"', "unknown-event"),
        ('{"channel": "book", "type": "update", "data": []}', "unknown-event"),
        ('{"channel": ["trade"]}', "unknown-event"),
        ('{"method": "add_order"}', "unknown-event"),
        ("{}", "unknown-event"),
        ('{"channel": "trade", "type": "update"}', "bad-shape"),
        ('{"channel": "trade", "type": "update", "data": {"a": 1}}', "bad-shape"),
        ('{"channel": "trade", "type": "update", "data": [7]}', "bad-shape"),
        (_update(symbol=None), "bad-shape"),
        (_update(timestamp="noon"), "bad-shape"),
        (_update(timestamp=1695628177), "bad-shape"),
        (_update(price=None), "bad-price"),
        (_update(price="x"), "bad-price"),
        (_update(price=-0.5), "bad-price"),
        (_update(price=0), "bad-price"),
        (_update(price=False), "bad-price"),
        (_update(price={"v": 1}), "bad-price"),
        ('{"channel": "ticker", "type": "update", "data": [{"symbol": "A/B"}]}', "bad-price"),
    ],
)
def test_garbage_raises_bad_frame_of_its_kind(frame: str | bytes, kind: str) -> None:
    assert check_bad_frames(Kraken(), [frame]) == [kind]


def test_a_trade_without_timestamp_has_exchange_time_zero_and_integer_prices_are_exact() -> None:
    [tick] = Kraken().parse(_update(timestamp=None, price=70000), 3)
    assert tick == Tick("kraken", "MATIC/USD", Decimal(70000), 0, 3)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("BTC/USD", "BTC/USD"),
        ("btc/usd", "BTC/USD"),
        ("btc-usd", "BTC/USD"),
        ("btc_usd", "BTC/USD"),
        ("XBT/USD", "BTC/USD"),
        ("xbtusd", "BTC/USD"),
        ("xdg/eur", "DOGE/EUR"),
        ("ETHUSDT", "ETH/USDT"),
        ("solbtc", "SOL/BTC"),
    ],
)
def test_symbols_normalise_to_base_slash_quote(given: str, canonical: str) -> None:
    assert Kraken().normalise_symbol(given) == canonical


@pytest.mark.parametrize("given", ["xbt", "XBT", "ZZZ", "btc/usd/eur", " btc/usd", "btc//usd", ""])
def test_a_symbol_without_a_quote_is_refused(given: str) -> None:
    # Issue 12: "xbt" was stored as "BTC", which names no Kraken pair.
    with pytest.raises(ValueError, match="not a symbol of kraken: a pair BASE/QUOTE"):
        Kraken().normalise_symbol(given)


def test_trade_subscribe_asks_for_no_snapshot() -> None:
    kraken = Kraken()
    [sub] = kraken.subscribe_frames(["BTC/USD", "MATIC/USD"])
    assert json.loads(sub) == {
        "method": "subscribe",
        "params": {"channel": "trade", "symbol": ["BTC/USD", "MATIC/USD"], "snapshot": False},
    }
    [unsub] = kraken.unsubscribe_frames(["BTC/USD"])
    assert json.loads(unsub) == {
        "method": "unsubscribe",
        "params": {"channel": "trade", "symbol": ["BTC/USD"]},
    }


def test_a_numbered_request_carries_req_id() -> None:
    [sub] = Kraken().subscribe_request(["BTC/USD"], 5)
    assert json.loads(sub) == {
        "method": "subscribe",
        "params": {"channel": "trade", "symbol": ["BTC/USD"], "snapshot": False},
        "req_id": 5,
    }
    [unsub] = Kraken().unsubscribe_request(["BTC/USD"], 6)
    assert json.loads(unsub)["req_id"] == 6


@pytest.mark.parametrize("req_id", [True, "5", 1.5])
def test_a_req_id_that_is_not_an_integer_is_no_request_id(req_id: object) -> None:
    frame = {"method": "subscribe", "success": False, "error": "x", "req_id": req_id}
    with pytest.raises(SubscriptionRejected) as info:
        Kraken().parse(json.dumps(frame), 0)
    assert info.value.request_id is None


def test_ticker_channel_keeps_its_snapshot() -> None:
    kraken = Kraken({"channel": "ticker"})
    [sub] = kraken.subscribe_frames(["ALGO/USD"])
    assert json.loads(sub) == {
        "method": "subscribe",
        "params": {"channel": "ticker", "symbol": ["ALGO/USD"]},
    }


def test_ping_every_thirty_seconds() -> None:
    kraken = Kraken()
    assert kraken.heartbeat_interval_s == 30.0
    assert json.loads(kraken.heartbeat_frame()) == {"method": "ping"}
