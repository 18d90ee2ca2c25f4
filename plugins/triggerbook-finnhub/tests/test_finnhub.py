"""The Finnhub stock feed on recorded frames (``data/finnhub.jsonl``)."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from triggerbook_finnhub import Finnhub

from engine.errors import ConfigError, SubscriptionRejected
from engine.feeds.parsing import edit_frame
from engine.feeds.testing import check_bad_frames, check_parse
from engine.model import Tick

FRAMES = (Path(__file__).parent / "data" / "finnhub.jsonl").read_text().splitlines()
RECEIVED = 7


def _tick(symbol: str, price: str, ms: int) -> Tick:
    return Tick("finnhub", symbol, Decimal(price), ms, RECEIVED)


# One entry per line of finnhub.jsonl but the last (an error): the ticks that line gives.
EXPECTED: list[list[Tick]] = [
    [_tick("BINANCE:BTCUSDT", "7296.89", 1575526691134)],
    [],  # ping
    [
        _tick("TSLA", "122.1", 1672348887195),
        _tick("AAPL", "129.58", 1672348887666),
        _tick("AAPL", "129.575", 1672348887785),
    ],
]
*DATA, ERROR = FRAMES


@pytest.mark.parametrize(("frame", "expected"), list(zip(DATA, EXPECTED, strict=True)))
def test_recorded_frames_give_exact_ticks(frame: str, expected: list[Tick]) -> None:
    assert Finnhub().parse(frame, RECEIVED) == expected
    # 129.575 stays 129.575 (a float would be 129.57499999999998863...)
    check_parse(Finnhub(), [frame], expected)


def test_the_recorded_error_rejects_with_finnhubs_words() -> None:
    with pytest.raises(SubscriptionRejected) as info:
        Finnhub().parse(ERROR, RECEIVED)
    assert info.value.reason == "Subscribing to too many symbols"
    assert info.value.symbols == ()


def test_an_error_without_words_still_rejects() -> None:
    with pytest.raises(SubscriptionRejected, match="error"):
        Finnhub().parse('{"type": "error"}', 0)


# The recorded trade with some fields of its entry changed (None removes one).
_trade = partial(edit_frame, FRAMES[0], ("data", 0))


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ("ping", "not-json"),
        (b"\x80", "not-json"),
        ('{"type": "trade", "data": [', "not-json"),
        ("[]", "unknown-event"),
        ("null", "unknown-event"),
        ('{"type": "news"}', "unknown-event"),
        ('{"type": {"a": 1}}', "unknown-event"),
        ('{"data": []}', "unknown-event"),
        ('{"type": "trade"}', "bad-shape"),
        ('{"type": "trade", "data": "AAPL"}', "bad-shape"),
        ('{"type": "trade", "data": [null]}', "bad-shape"),
        (_trade(s=None), "bad-shape"),
        (_trade(t="1575526691134"), "bad-shape"),
        (_trade(t=-1), "bad-shape"),
        (_trade(t=1.5), "bad-shape"),
        (_trade(p=None), "bad-price"),
        (_trade(p="abc"), "bad-price"),
        (_trade(p=0), "bad-price"),
        (_trade(p=-3.5), "bad-price"),
        (_trade(p=True), "bad-price"),
    ],
)
def test_garbage_raises_bad_frame_of_its_kind(frame: str | bytes, kind: str) -> None:
    assert check_bad_frames(Finnhub(), [frame]) == [kind]


def test_a_trade_without_time_has_exchange_time_zero() -> None:
    assert Finnhub().parse(_trade(t=None), 1)[0].exchange_time_ms == 0


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("AAPL", "AAPL"),
        ("aapl", "AAPL"),
        ("BINANCE:BTCUSDT", "BINANCE:BTCUSDT"),
        ("OANDA:EUR_USD", "OANDA:EUR_USD"),
        ("BRK.B", "BRK.B"),
        ("IC MARKETS:1", "IC MARKETS:1"),
        ("binance:btcusdt", "BINANCE:BTCUSDT"),
        ("oanda:eur_usd", "OANDA:EUR_USD"),
        ("brk.b", "BRK.B"),
    ],
)
def test_symbols_are_as_given_upper_cased(given: str, canonical: str) -> None:
    assert Finnhub().normalise_symbol(given) == canonical


@pytest.mark.parametrize("given", [" aapl ", "A:B:C", ":AAPL", "AAPL:", "brk b", "A" * 17, "€"])
def test_symbols_finnhub_cannot_spell_are_refused(given: str) -> None:
    with pytest.raises(ValueError, match="not a symbol of finnhub"):
        Finnhub().normalise_symbol(given)


def test_one_frame_per_symbol() -> None:
    finnhub = Finnhub()
    assert [json.loads(f) for f in finnhub.subscribe_frames(["AAPL", "MSFT"])] == [
        {"type": "subscribe", "symbol": "AAPL"},
        {"type": "subscribe", "symbol": "MSFT"},
    ]
    assert [json.loads(f) for f in finnhub.unsubscribe_frames(["AAPL"])] == [
        {"type": "unsubscribe", "symbol": "AAPL"}
    ]


def test_the_token_goes_into_the_connect_url() -> None:
    finnhub = Finnhub({"enabled": True, "token": "s3cret&x=1"})
    url = urlsplit(finnhub.connect_url())
    assert (url.scheme, url.netloc) == ("wss", "ws.finnhub.io")
    assert parse_qs(url.query) == {"token": ["s3cret&x=1"]}


def test_a_configured_url_keeps_its_query_and_its_token_is_replaced() -> None:
    finnhub = Finnhub({"url": "ws://127.0.0.1:8765/ws?a=1&token=old", "token": "new"})
    url = urlsplit(finnhub.connect_url())
    assert (url.netloc, url.path) == ("127.0.0.1:8765", "/ws")
    assert parse_qs(url.query) == {"a": ["1"], "token": ["new"]}


def test_enabled_without_token_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="TRIGGERBOOK_FEEDS_FINNHUB_TOKEN"):
        Finnhub({"enabled": True, "token": ""})
    Finnhub({"enabled": False})  # a disabled feed needs no token
    Finnhub()


def test_an_operator_enables_it_with_a_token_from_the_environment(tmp_path: Path) -> None:
    from engine.plugins.registry import load_registry

    registry = load_registry()
    assert registry.normalise("finnhub", "aapl") == "AAPL"
    path = tmp_path / "config.toml"
    path.write_text('[feeds.finnhub]\nenabled = true\nurl = "ws://127.0.0.1:9"\n')
    config = registry.load_config(path, environ={"TRIGGERBOOK_FEEDS_FINNHUB_TOKEN": "abc"})
    assert "finnhub" in config.enabled_feeds()
    exchange = registry.exchange("finnhub", config.feeds["finnhub"])
    assert exchange.connect_url() == "ws://127.0.0.1:9?token=abc"
    without = registry.load_config(path, environ={})
    with pytest.raises(ConfigError, match="token"):
        registry.exchange("finnhub", without.feeds["finnhub"])
