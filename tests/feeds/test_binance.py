"""engine/feeds/binance.py on the documented frames: exact ticks, bad frames, error replies."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from engine.errors import BadFrame, ConfigError, FeedClosed, SubscriptionRejected
from engine.feeds.binance import Binance
from engine.feeds.testing import check_bad_frames, check_parse

from .conftest import DATA


def test_documented_frames_give_exact_ticks() -> None:
    ticks = check_parse(
        Binance(),
        DATA / "binance.jsonl",
        [
            ("BNBBTC", "0.001", 1672515782136),  # trade: the trade time T
            ("BNBBTC", "0.001", 1672515782136),  # aggTrade
            ("BNBUSDT", "25.35855000", 0),  # bookTicker: the exact mid, no exchange time
            ("BNBBTC", "0.0025", 1672515782136),  # !miniTicker@arr: the close price
        ],
    )
    assert all(t.exchange == "binance" for t in ticks)


def test_received_ns_is_carried() -> None:
    frame = '{"stream":"x@trade","data":{"s":"X","p":"1.10","T":7}}'
    (tick,) = Binance().parse(frame, 123)
    assert (tick.received_ns, tick.exchange_time_ms, tick.price) == (123, 7, Decimal("1.10"))


def test_subscribe_frames_batch_and_remember_ids() -> None:
    class Small(Binance):
        symbols_per_message = 2

    ex = Small({"stream": "aggTrade"})
    frames = [json.loads(f) for f in ex.subscribe_frames(["BTCUSDT", "ETHUSDT", "BNBBTC"])]
    assert frames == [
        {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "ethusdt@aggTrade"], "id": 1},
        {"method": "SUBSCRIBE", "params": ["bnbbtc@aggTrade"], "id": 2},
    ]
    (unsub,) = [json.loads(f) for f in ex.unsubscribe_frames(["BNBBTC"])]
    assert unsub == {"method": "UNSUBSCRIBE", "params": ["bnbbtc@aggTrade"], "id": 3}
    assert ex.parse('{"result":null,"id":1}', 0) == []
    with pytest.raises(SubscriptionRejected) as info:
        ex.parse('{"error":{"code":2,"msg":"Invalid request"},"id":2}', 0)
    assert info.value.symbols == ("BNBBTC",)
    assert "Invalid request" in info.value.reason


def test_numbered_requests_carry_the_runners_id_and_errors_return_it() -> None:
    class Small(Binance):
        symbols_per_message = 2

    ex = Small()
    frames = [json.loads(f) for f in ex.subscribe_request(["BTCUSDT", "ETHUSDT", "BNBBTC"], 7)]
    assert frames == [
        {"method": "SUBSCRIBE", "params": ["btcusdt@trade", "ethusdt@trade"], "id": 7},
        {"method": "SUBSCRIBE", "params": ["bnbbtc@trade"], "id": 7},
    ]
    (unsub,) = [json.loads(f) for f in ex.unsubscribe_request(["BNBBTC"], 8)]
    assert unsub == {"method": "UNSUBSCRIBE", "params": ["bnbbtc@trade"], "id": 8}
    assert ex.parse('{"result":null,"id":7}', 0) == []
    with pytest.raises(SubscriptionRejected) as info:
        ex.parse('{"error":{"code":2,"msg":"Invalid request"},"id":8}', 0)
    # the runner keeps the map of its own requests: the reply's id is what it needs
    assert (info.value.request_id, info.value.symbols) == (8, ())
    assert not ex._pending


def test_flat_error_reply_is_a_rejection() -> None:
    with pytest.raises(SubscriptionRejected, match="Unknown property"):
        Binance().parse('{"code": 0, "msg": "Unknown property", "id": 9}', 0)


def test_server_shutdown_asks_for_a_reconnect() -> None:
    frame = '{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}'
    with pytest.raises(FeedClosed):
        Binance().parse(frame, 0)


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ("not json {", "not-json"),
        (b"\xff\xfe", "not-json"),
        ('{"stream":"btcusdt@kline_1m","data":{"e":"kline"}}', "unknown-event"),
        ('{"hello":"world"}', "unknown-event"),
        ("[1, 2]", "unknown-event"),
        ('{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","T":1}}', "bad-field"),
        ('{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","p":"abc","T":1}}', "bad-price"),
        ('{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","p":"0","T":1}}', "bad-price"),
        ('{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","p":"NaN","T":1}}', "bad-price"),
        ('{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","p":"-1","T":1}}', "bad-price"),
        ('{"stream":"x@bookTicker","data":{"s":"X","b":"1","a":"x"}}', "bad-price"),
        ('{"stream":"x@bookTicker","data":{"s":"X","b":"1"}}', "bad-field"),
        ('{"stream":"!miniTicker@arr","data":{"s":"X"}}', "bad-field"),
    ],
)
def test_bad_frames_name_their_kind(frame: str | bytes, kind: str) -> None:
    assert check_bad_frames(Binance(), [frame]) == [kind]


def test_all_market_array_skips_unpriced_elements() -> None:
    frame = (
        '{"stream":"!miniTicker@arr","data":[{"s":"A","c":"0","E":1},{"s":"B","c":"2.50","E":2}]}'
    )
    assert [(t.symbol, t.price) for t in Binance().parse(frame, 0)] == [("B", Decimal("2.50"))]


@pytest.mark.parametrize("text", ["btcusdt", "BTC/USDT", "btc-usdt", "btc_usdt"])
def test_symbols_are_normalised(text: str) -> None:
    assert Binance().normalise_symbol(text) == "BTCUSDT"


@pytest.mark.parametrize(
    "text", ["", "B", " btcusdt", "BTCUSDT\n", "BTC:USDT", "BTC/US/DT", "A" * 21, "BTCÜSDT", "b.tc"]
)
def test_symbols_binance_cannot_spell_are_refused_with_the_rule(text: str) -> None:
    with pytest.raises(ValueError, match="not a symbol of binance: 2 to 20 letters and digits"):
        Binance().normalise_symbol(text)


def test_unknown_stream_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="stream"):
        Binance({"stream": "depth"})


def test_url_and_overrides() -> None:
    ex = Binance({"url": "ws://127.0.0.1:9/", "stale_after_s": 5})
    assert ex.connect_url() == "ws://127.0.0.1:9/stream"
    assert ex.stale_after_s == 5.0
    assert Binance().connect_url() == "wss://stream.binance.com:9443/stream"


def test_check_helpers_fail_loudly() -> None:
    with pytest.raises(AssertionError, match="tick 0"):
        check_parse(Binance(), DATA / "binance.jsonl", [("BNBBTC", "0.0010", 1672515782136)])
    with pytest.raises(AssertionError, match="ticks, expected"):
        check_parse(Binance(), ['{"result":null,"id":1}'], [("BNBBTC", "1", 0)])
    with pytest.raises(AssertionError, match="accepted a bad frame"):
        check_bad_frames(Binance(), ['{"result":null,"id":1}'])
    with pytest.raises(BadFrame):
        check_parse(Binance(), ["nope"], [])
