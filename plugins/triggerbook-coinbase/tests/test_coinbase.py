"""The Coinbase exchange on frames copied from its documentation (``data/coinbase.jsonl``)."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from triggerbook_coinbase import Coinbase, triggerbook_exchanges

from engine.errors import BadFrame, ConfigError, SubscriptionRejected
from engine.model import Tick

FRAMES = (Path(__file__).parent / "data" / "coinbase.jsonl").read_text().splitlines()
RECEIVED = 123_456_789

# One entry per line of coinbase.jsonl: the ticks that line must give.
EXPECTED: list[list[Tick]] = [
    [],  # subscriptions
    [],  # heartbeat
    [Tick("coinbase", "ETH-USD", Decimal("1285.22"), 1666222102061, RECEIVED)],
    [Tick("coinbase", "BTC-USD", Decimal("400.23"), 1415348367028, RECEIVED)],
    [Tick("coinbase", "BTC-USD", Decimal("400.23"), 1415348367028, RECEIVED)],  # last_match
    None,  # error: raises
]


@pytest.mark.parametrize(("index", "frame"), list(enumerate(FRAMES)))
def test_recorded_frames_give_exact_ticks(index: int, frame: str) -> None:
    coinbase = Coinbase()
    if EXPECTED[index] is None:
        with pytest.raises(SubscriptionRejected):
            coinbase.parse(frame, RECEIVED)
        return
    ticks = coinbase.parse(frame, RECEIVED)
    assert ticks == EXPECTED[index]
    # exact, not merely equal: the string's digits survive
    assert [str(t.price) for t in ticks] == [str(t.price) for t in EXPECTED[index]]


def test_bytes_frames_parse_like_text() -> None:
    assert Coinbase().parse(FRAMES[3].encode(), 1) == Coinbase().parse(FRAMES[3], 1)


def test_error_reply_names_the_rejected_product() -> None:
    reason = "FOO-BAR is not a valid product"
    frame = json.dumps({"type": "error", "message": "Failed to subscribe", "reason": reason})
    with pytest.raises(SubscriptionRejected) as info:
        Coinbase().parse(frame, 0)
    assert info.value.symbols == ("FOO-BAR",)
    assert "Failed to subscribe" in info.value.reason


def test_error_reply_without_words_still_rejects() -> None:
    with pytest.raises(SubscriptionRejected) as info:
        Coinbase().parse('{"type": "error"}', 0)
    assert info.value.symbols == ()


def _match(**fields: object) -> str:
    base = json.loads(FRAMES[3])
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None})


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ("not json at all", "not-json"),
        (b"\xff\xfe", "not-json"),
        ('{"type": "match", ', "not-json"),
        ("[1, 2, 3]", "unknown-event"),
        ("42", "unknown-event"),
        ('{"type": "l2update", "product_id": "BTC-USD"}', "unknown-event"),
        ('{"no_type": true}', "unknown-event"),
        ('{"type": ["match"]}', "unknown-event"),
        (_match(price="abc"), "bad-price"),
        (_match(price="NaN"), "bad-price"),
        (_match(price="Infinity"), "bad-price"),
        (_match(price="-1"), "bad-price"),
        (_match(price="0"), "bad-price"),
        (_match(price=True), "bad-price"),
        (_match(price=[1]), "bad-price"),
        (_match(price=None), "bad-price"),
        (_match(product_id=None), "bad-shape"),
        (_match(product_id=7), "bad-shape"),
        (_match(time="yesterday"), "bad-shape"),
        (_match(time=12), "bad-shape"),
    ],
)
def test_garbage_raises_bad_frame_of_its_kind(frame: str | bytes, kind: str) -> None:
    with pytest.raises(BadFrame) as info:
        Coinbase().parse(frame, 0)
    assert info.value.kind == kind


def test_a_json_number_price_is_exact_and_a_frame_without_time_has_exchange_time_zero() -> None:
    frame = '{"type": "ticker", "product_id": "BTC-USD", "price": 0.1}'
    assert Coinbase().parse(frame, 5) == [Tick("coinbase", "BTC-USD", Decimal("0.1"), 0, 5)]


def test_a_time_without_zone_is_utc() -> None:
    [tick] = Coinbase().parse(_match(time="2014-11-07T08:19:27.028459"), 0)
    assert tick.exchange_time_ms == 1415348367028


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("BTC-USD", "BTC-USD"),
        ("btc-usd", "BTC-USD"),
        (" btc/usd ", "BTC-USD"),
        ("btc_usd", "BTC-USD"),
        ("btc usd", "BTC-USD"),
        ("BTCUSD", "BTC-USD"),
        ("ethbtc", "ETH-BTC"),
        ("usdtusdc", "USDT-USDC"),
        ("SHIBUSDT", "SHIB-USDT"),
        ("XYZ", "XYZ"),
    ],
)
def test_symbols_normalise_to_base_dash_quote(given: str, canonical: str) -> None:
    assert Coinbase().normalise_symbol(given) == canonical


def test_subscribe_and_unsubscribe_frames() -> None:
    coinbase = Coinbase()
    [sub] = coinbase.subscribe_frames(["BTC-USD", "ETH-USD"])
    assert json.loads(sub) == {
        "type": "subscribe",
        "product_ids": ["BTC-USD", "ETH-USD"],
        "channels": ["matches", "heartbeat"],
    }
    [unsub] = coinbase.unsubscribe_frames(["ETH-USD"])
    assert json.loads(unsub) == {
        "type": "unsubscribe",
        "product_ids": ["ETH-USD"],
        "channels": ["matches", "heartbeat"],
    }


def test_ticker_channel_from_config() -> None:
    coinbase = Coinbase({"channel": "ticker", "url": "ws://127.0.0.1:1"})
    assert json.loads(coinbase.subscribe_frames(["BTC-USD"])[0])["channels"] == [
        "ticker",
        "heartbeat",
    ]
    assert coinbase.connect_url() == "ws://127.0.0.1:1"
    assert Coinbase().connect_url() == Coinbase.url


def test_unknown_channel_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="channel"):
        Coinbase({"channel": "level2"})


def test_hook_and_entry_point() -> None:
    assert list(triggerbook_exchanges()) == [Coinbase]
    names = {ep.name: ep.value for ep in entry_points(group="triggerbook")}
    assert names.get("coinbase") == "triggerbook_coinbase"
