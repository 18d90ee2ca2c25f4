"""The OKX v5 exchange on frames copied from its documentation (``data/okx.jsonl``)."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
from triggerbook_okx import Okx

from engine.errors import SubscriptionRejected
from engine.feeds.parsing import edit_frame
from engine.feeds.testing import check_bad_frames, check_parse
from engine.model import Tick

FRAMES = (Path(__file__).parent / "data" / "okx.jsonl").read_text().splitlines()
RECEIVED = 42

# One entry per line of okx.jsonl but the last (an error reply): the ticks that line gives.
EXPECTED: list[list[Tick]] = [
    [],  # subscribe reply
    [Tick("okx", "BTC-USDT", Decimal("42219.9"), 1630048897897, RECEIVED)],
    [Tick("okx", "BTC-USDT", Decimal("9999.99"), 1597026383085, RECEIVED)],
    [],  # unsubscribe reply
    [],  # notice: the server closes later and the runner reconnects
]
*DATA, ERROR = FRAMES


@pytest.mark.parametrize(("frame", "expected"), list(zip(DATA, EXPECTED, strict=True)))
def test_recorded_frames_give_exact_ticks(frame: str, expected: list[Tick]) -> None:
    assert Okx().parse(frame, RECEIVED) == expected
    check_parse(Okx(), [frame], expected)


def test_the_recorded_error_names_the_instrument() -> None:
    with pytest.raises(SubscriptionRejected) as info:
        Okx().parse(ERROR, RECEIVED)
    assert info.value.symbols == ("LTC-USD-200327",)
    assert info.value.reason.startswith("60012 Invalid request")


@pytest.mark.parametrize("frame", ["pong", b"pong"])
def test_pong_is_a_control_frame(frame: str | bytes) -> None:
    assert Okx().parse(frame, 0) == []


def test_unknown_instrument_error_names_it() -> None:
    frame = {
        "event": "error",
        "code": "60018",
        "msg": "Wrong URL or channel:trades,instId:FOO-USDT doesn't exist.",
        "connId": "a4d3ae55",
    }
    with pytest.raises(SubscriptionRejected) as info:
        Okx().parse(json.dumps(frame), 0)
    assert info.value.symbols == ("FOO-USDT",)
    assert info.value.reason.startswith("60018 ")


def test_an_error_with_no_words_still_rejects() -> None:
    with pytest.raises(SubscriptionRejected) as info:
        Okx().parse('{"event": "channel-conn-count-error", "channel": "trades"}', 0)
    assert info.value.reason == "error"
    assert info.value.symbols == ()


def test_connection_count_update_is_a_control_frame() -> None:
    frame = '{"event":"channel-conn-count","channel":"trades","connCount":"2","connId":"ab"}'
    assert Okx().parse(frame, 0) == []


def test_a_push_with_many_trades_gives_a_tick_each() -> None:
    frame = json.loads(FRAMES[1])
    second = {**frame["data"][0], "px": "42220", "ts": "1630048897898", "tradeId": "130639475"}
    frame["data"].append(second)
    ticks = Okx().parse(json.dumps(frame), 1)
    assert [(t.price, t.exchange_time_ms) for t in ticks] == [
        (Decimal("42219.9"), 1630048897897),
        (Decimal("42220"), 1630048897898),
    ]


# The recorded trades push with some fields of its entry changed (None removes one).
_trade = partial(edit_frame, FRAMES[1], ("data", 0))


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ("ping", "not-json"),
        (b"\xc3\x28", "not-json"),
        ('{"arg": ', "not-json"),
        ("[1]", "unknown-event"),
        ("{}", "unknown-event"),
        ('{"event": "login", "code": "0"}', "unknown-event"),
        ('{"event": ["subscribe"]}', "unknown-event"),
        ('{"arg": "trades", "data": []}', "unknown-event"),
        ('{"arg": {"channel": "books5", "instId": "BTC-USDT"}, "data": []}', "unknown-event"),
        ('{"arg": {"channel": "trades", "instId": "BTC-USDT"}}', "bad-shape"),
        ('{"arg": {"channel": "trades"}, "data": ["x"]}', "bad-shape"),
        (_trade(instId=None), "bad-shape"),
        (_trade(ts="yesterday"), "bad-shape"),
        (_trade(ts="-5"), "bad-shape"),
        (_trade(ts=True), "bad-shape"),
        (_trade(ts=-5), "bad-shape"),
        ('{"event": "trades", "data": []}', "bad-shape"),
        ('{"event": "tickers", "arg": {"channel": ["x"]}, "data": []}', "bad-shape"),
        (_trade(px=None), "bad-price"),
        (_trade(px=""), "bad-price"),
        (_trade(px="sNaN"), "bad-price"),
        (_trade(px="-1"), "bad-price"),
        (_trade(px=["1"]), "bad-price"),
    ],
)
def test_garbage_raises_bad_frame_of_its_kind(frame: str | bytes, kind: str) -> None:
    assert check_bad_frames(Okx(), [frame]) == [kind]


def test_numeric_ts_and_missing_ts() -> None:
    [tick] = Okx().parse(_trade(ts=1630048897897), 0)
    assert tick.exchange_time_ms == 1630048897897
    [tick] = Okx().parse(_trade(ts=None), 0)
    assert tick.exchange_time_ms == 0


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("BTC-USDT", "BTC-USDT"),
        ("btc-usdt", "BTC-USDT"),
        ("btc/usdt", "BTC-USDT"),
        ("btc_usdt", "BTC-USDT"),
        ("BTCUSDT", "BTC-USDT"),
        ("ethbtc", "ETH-BTC"),
        ("btc-usdt-swap", "BTC-USDT-SWAP"),
        ("btc-usd-250328-60000-c", "BTC-USD-250328-60000-C"),
    ],
)
def test_symbols_normalise_to_inst_id(given: str, canonical: str) -> None:
    assert Okx().normalise_symbol(given) == canonical


@pytest.mark.parametrize("given", ["OKB", "btc", "a-b-c-d-e-f", " btc-usdt", "btc--usdt", ""])
def test_symbols_okx_cannot_spell_are_refused(given: str) -> None:
    with pytest.raises(ValueError, match="not a symbol of okx: an instrument BASE-QUOTE"):
        Okx().normalise_symbol(given)


def test_subscribe_and_unsubscribe_frames() -> None:
    okx = Okx()
    [sub] = okx.subscribe_frames(["BTC-USDT", "ETH-USDT"])
    assert json.loads(sub) == {
        "op": "subscribe",
        "args": [
            {"channel": "trades", "instId": "BTC-USDT"},
            {"channel": "trades", "instId": "ETH-USDT"},
        ],
    }
    [unsub] = Okx({"channel": "tickers"}).unsubscribe_frames(["BTC-USDT"])
    assert json.loads(unsub) == {
        "op": "unsubscribe",
        "args": [{"channel": "tickers", "instId": "BTC-USDT"}],
    }


def test_a_full_subscribe_message_stays_under_64_kb() -> None:
    symbols = [f"ASSET{i:05d}-USDT-SWAP" for i in range(Okx.symbols_per_message)]
    assert len(Okx().subscribe_frames(symbols)[0].encode()) < 64 * 1024


def test_ping_text_heartbeat_within_thirty_seconds() -> None:
    okx = Okx()
    assert okx.heartbeat_frame() == "ping"
    assert okx.heartbeat_interval_s is not None and okx.heartbeat_interval_s < 30
    assert okx.stale_after_s > okx.heartbeat_interval_s


def test_request_rate_is_480_an_hour() -> None:
    assert Okx.max_messages_per_second * 3600 == pytest.approx(480)


def test_a_numbered_request_carries_its_id_as_a_string() -> None:
    [sub] = Okx().subscribe_request(["BTC-USDT"], 12)
    assert json.loads(sub) == {
        "id": "12",
        "op": "subscribe",
        "args": [{"channel": "trades", "instId": "BTC-USDT"}],
    }
    frames = Okx().unsubscribe_frames([f"A{i}-USDT" for i in range(250)])
    assert [len(json.loads(f)["args"]) for f in frames] == [100, 100, 50]
    assert all("id" not in json.loads(f) for f in frames)


@pytest.mark.parametrize("echoed", ["x1", "", "١٢", 12])
def test_an_id_that_is_not_ours_is_no_request_id(echoed: object) -> None:
    frame = json.dumps({"id": echoed, "event": "error", "code": "60012", "msg": "Invalid"})
    with pytest.raises(SubscriptionRejected) as info:
        Okx().parse(frame, 0)
    assert info.value.request_id is None
