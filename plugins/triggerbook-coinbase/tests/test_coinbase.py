"""The Coinbase exchange on frames copied from its documentation (``data/coinbase.jsonl``)."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
from triggerbook_coinbase import Coinbase

from engine.errors import SubscriptionRejected
from engine.feeds.parsing import edit_frame
from engine.feeds.testing import check_bad_frames, check_parse
from engine.model import Tick

FRAMES = (Path(__file__).parent / "data" / "coinbase.jsonl").read_text().splitlines()
RECEIVED = 123_456_789

# One entry per line of coinbase.jsonl but the last (an error reply): the ticks that line gives.
EXPECTED: list[list[Tick]] = [
    [],  # subscriptions
    [],  # heartbeat
    [Tick("coinbase", "ETH-USD", Decimal("1285.22"), 1666222102061, RECEIVED)],
    [Tick("coinbase", "BTC-USD", Decimal("400.23"), 1415348367028, RECEIVED)],
    [Tick("coinbase", "BTC-USD", Decimal("400.23"), 1415348367028, RECEIVED)],  # last_match
]
*DATA, ERROR = FRAMES


@pytest.mark.parametrize(("frame", "expected"), list(zip(DATA, EXPECTED, strict=True)))
def test_recorded_frames_give_exact_ticks(frame: str, expected: list[Tick]) -> None:
    assert Coinbase().parse(frame, RECEIVED) == expected
    check_parse(Coinbase(), [frame], expected)  # exact, not merely equal: the digits survive


def test_the_recorded_error_reply_rejects() -> None:
    with pytest.raises(SubscriptionRejected):
        Coinbase().parse(ERROR, RECEIVED)


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


# The recorded match with some fields changed (None removes one).
_match = partial(edit_frame, FRAMES[3], ())


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
    assert check_bad_frames(Coinbase(), [frame]) == [kind]


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
        ("btc/usd", "BTC-USD"),
        ("btc_usd", "BTC-USD"),
        ("btc usd", "BTC-USD"),
        ("BTCUSD", "BTC-USD"),
        ("ethbtc", "ETH-BTC"),
        ("usdtusdc", "USDT-USDC"),
        ("SHIBUSDT", "SHIB-USDT"),
    ],
)
def test_symbols_normalise_to_base_dash_quote(given: str, canonical: str) -> None:
    assert Coinbase().normalise_symbol(given) == canonical


@pytest.mark.parametrize("given", ["XYZ", "btc", " btc/usd ", "BTC-USD-X", "B-USD", "BTC--USD", ""])
def test_symbols_coinbase_cannot_spell_are_refused(given: str) -> None:
    with pytest.raises(ValueError, match="not a symbol of coinbase: a product BASE-QUOTE"):
        Coinbase().normalise_symbol(given)


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
    coinbase = Coinbase({"channel": "ticker"})
    assert json.loads(coinbase.subscribe_frames(["BTC-USD"])[0])["channels"] == [
        "ticker",
        "heartbeat",
    ]
