"""engine/feeds/parsing.py: the shared frame-reading helpers of the exchange plugins."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import BadFrame, ConfigError
from engine.feeds.parsing import (
    Handler,
    Message,
    choose_option,
    data_items,
    decode_json,
    decode_object,
    edit_frame,
    encode_json,
    epoch_ms,
    exact_price,
    handler_for,
    iso_ms,
    no_ticks,
    split_symbol,
)
from engine.model import Tick

FRAME = '{"type": "x"}'


def _kind(call: Callable[[], object]) -> str:
    with pytest.raises(BadFrame) as info:
        call()
    assert info.value.sample == FRAME
    return info.value.kind


# -------------------------------------------------------------------------------------------------
# decoding and dispatch


def test_json_numbers_decode_as_exact_decimals() -> None:
    msg = decode_json('{"p": 129.575, "n": 7, "s": "1.10", "e": 1e-3}')
    assert msg == {"p": Decimal("129.575"), "n": 7, "s": "1.10", "e": Decimal("0.001")}
    assert str(msg["p"]) == "129.575" and type(msg["n"]) is int
    assert decode_json(b"[1, 2]") == [1, 2]


@pytest.mark.parametrize("frame", ["nope", b"\xff\xfe", '{"a": ', ""])
def test_not_json_is_a_bad_frame(frame: str | bytes) -> None:
    with pytest.raises(BadFrame) as info:
        decode_json(frame)
    assert info.value.kind == "not-json"
    with pytest.raises(BadFrame, match="not-json"):
        decode_object(frame)


@pytest.mark.parametrize("frame", ["[]", "42", '"heartbeat"', "null", "true"])
def test_json_that_is_not_an_object_is_an_unknown_event(frame: str) -> None:
    with pytest.raises(BadFrame) as info:
        decode_object(frame)
    assert info.value.kind == "unknown-event"


def test_an_object_decodes() -> None:
    assert decode_object(b'{"type": "ping"}') == {"type": "ping"}


def _ticker(exchange: str, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
    return [Tick(exchange, msg["s"], Decimal(1), 0, received_ns)]


HANDLERS: dict[str, Handler[str]] = {"ticker": _ticker, "pong": no_ticks}


def test_a_known_type_picks_its_handler() -> None:
    assert handler_for(HANDLERS, "ticker", FRAME)("ex", {"s": "A"}, FRAME, 5) == [
        Tick("ex", "A", Decimal(1), 0, 5)
    ]
    assert handler_for(HANDLERS, "pong", FRAME)("ex", {}, FRAME, 5) == []


@pytest.mark.parametrize("key", [None, "book", ["ticker"], {"a": 1}, 7, ""])
def test_an_unknown_or_non_string_type_is_an_unknown_event(key: object) -> None:
    assert _kind(lambda: handler_for(HANDLERS, key, FRAME)) == "unknown-event"


def test_data_items_are_the_entries_of_data() -> None:
    items = [{"s": "A", "p": 1}, {"s": "B"}]
    assert data_items({"data": items}, "s", FRAME) == items
    assert data_items({"data": []}, "s", FRAME) == []


@pytest.mark.parametrize(
    "msg",
    [
        {},
        {"data": None},
        {"data": "AAPL"},
        {"data": {"s": "A"}},
        {"data": [None]},
        {"data": [7]},
        {"data": [{"s": "A"}, {"p": 1}]},
        {"data": [{"s": 7}]},
    ],
)
def test_data_that_is_not_a_list_of_symbol_objects_is_bad_shape(msg: Message) -> None:
    assert _kind(lambda: data_items(msg, "s", FRAME)) == "bad-shape"


def test_encode_json_is_compact_text() -> None:
    text = encode_json({"op": "subscribe", "args": ["BTC-USDT"], "snapshot": False})
    assert text == '{"op":"subscribe","args":["BTC-USDT"],"snapshot":false}'


# -------------------------------------------------------------------------------------------------
# prices and times


@pytest.mark.parametrize(
    ("value", "exact"),
    [
        ("400.23", "400.23"),
        ("0.0010", "0.0010"),
        (Decimal("129.575"), "129.575"),
        (70000, "70000"),
        ("1e3", "1E+3"),
    ],
)
def test_prices_keep_their_digits(value: object, exact: str) -> None:
    assert str(exact_price(value, FRAME)) == exact


@pytest.mark.parametrize(
    "value",
    [None, True, False, [1], {"v": 1}, 1.5, "", "abc", "NaN", "sNaN", "Infinity", "-1", "0", 0, -3],
)
def test_a_price_that_is_not_a_finite_positive_decimal_is_bad(value: object) -> None:
    assert _kind(lambda: exact_price(value, FRAME)) == "bad-price"


@given(st.decimals(min_value=Decimal("1e-12"), max_value=Decimal("1e12"), places=8))
def test_any_positive_decimal_string_is_read_exactly(price: Decimal) -> None:
    assert str(exact_price(str(price), FRAME)) == str(price)
    assert str(exact_price(decode_json(f'{{"p": {price}}}')["p"], FRAME)) == str(price)


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("2014-11-07T08:19:27.028459Z", 1415348367028),
        ("2014-11-07T08:19:27.028459", 1415348367028),
        ("2014-11-07T09:19:27.028+01:00", 1415348367028),
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_rfc3339_times_are_epoch_milliseconds(value: str, ms: int) -> None:
    assert iso_ms(value, FRAME) == ms


@pytest.mark.parametrize("value", ["yesterday", "", 12, None, 1.5])
def test_a_time_that_is_not_rfc3339_is_bad_shape(value: object) -> None:
    assert _kind(lambda: iso_ms(value, FRAME)) == "bad-shape"


def test_epoch_milliseconds() -> None:
    assert epoch_ms(1630048897897, FRAME) == 1630048897897
    assert epoch_ms(0, FRAME) == 0
    assert epoch_ms("1630048897897", FRAME, text=True) == 1630048897897
    assert epoch_ms(7, FRAME, text=True) == 7


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1630048897897", False),
        (-1, False),
        (-1, True),
        (True, False),
        (True, True),
        (1.5, True),
        (Decimal("1.5"), True),
        (None, True),
        ("-5", True),
        ("+5", True),
        ("", True),
        ("yesterday", True),
        ("١٢", True),  # Arabic-Indic digits: isdigit() but not ASCII
    ],
)
def test_a_time_that_is_not_non_negative_milliseconds_is_bad_shape(
    value: object, text: bool
) -> None:
    assert _kind(lambda: epoch_ms(value, FRAME, text=text)) == "bad-shape"


@given(st.integers(min_value=0, max_value=2**53))
def test_epoch_ms_reads_digits_as_their_integer(ms: int) -> None:
    assert epoch_ms(str(ms), FRAME, text=True) == epoch_ms(ms, FRAME) == ms


# -------------------------------------------------------------------------------------------------
# symbols and options

QUOTES = ("USDT", "USDC", "USD", "BTC")


@pytest.mark.parametrize(
    ("symbol", "parts"),
    [
        ("btc/usd", ["BTC", "USD"]),
        (" btc_usd ", ["BTC", "USD"]),
        ("btc usd", ["BTC", "USD"]),
        ("btc:usd", ["BTC", "USD"]),
        ("btc.usd", ["BTC", "USD"]),
        ("btc--usd", ["BTC", "USD"]),
        ("btc-usdt-swap", ["BTC", "USDT", "SWAP"]),
        ("BTCUSDT", ["BTC", "USDT"]),
        ("ethbtc", ["ETH", "BTC"]),
        ("usdtusdc", ["USDT", "USDC"]),
        ("USDT", ["USDT"]),
        ("XYZ", ["XYZ"]),
        ("/btc/", ["BTC"]),
        ("  ", []),
    ],
)
def test_symbols_split_at_separators_or_before_a_known_quote(symbol: str, parts: list[str]) -> None:
    assert split_symbol(symbol, QUOTES) == parts


def test_the_first_matching_quote_wins() -> None:
    assert split_symbol("BTCUSDT", ("USDT", "USD", "T")) == ["BTC", "USDT"]
    assert split_symbol("BTCUSDT", ("T", "USDT")) == ["BTCUSD", "T"]


def test_separators_can_be_narrowed() -> None:
    assert split_symbol("oanda:eur_usd", (), re.compile(r":")) == ["OANDA", "EUR_USD"]


def test_an_allowed_option_is_returned() -> None:
    assert choose_option("okx", "channel", "tickers", ("trades", "tickers")) == "tickers"


@pytest.mark.parametrize("value", ["books", "", None, 3, ["trades"]])
def test_an_option_outside_the_allowed_values_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        choose_option("okx", "channel", value, ("trades", "tickers"))
    assert str(info.value) == (f"[feeds.okx] channel must be one of trades, tickers, got {value!r}")


# -------------------------------------------------------------------------------------------------
# for plugin tests

RECORDED = '{"type": "trade", "data": [{"s": "AAPL", "p": 129.575, "t": 1}], "x": 1}'


def test_edit_frame_sets_and_removes_fields() -> None:
    assert json.loads(edit_frame(RECORDED, ("data", 0), p="abc", t=None)) == {
        "type": "trade",
        "data": [{"s": "AAPL", "p": "abc"}],
        "x": 1,
    }
    top = json.loads(edit_frame(RECORDED, x=None, type="ping"))
    assert top == {"type": "ping", "data": [{"s": "AAPL", "p": 129.575, "t": 1}]}


def test_edit_frame_keeps_numbers_numbers() -> None:
    assert '"p": 129.575' in edit_frame(RECORDED, ("data", 0))
    assert edit_frame(RECORDED) == json.dumps(json.loads(RECORDED))


@pytest.mark.parametrize(
    ("path", "error"),
    [(("data", 0, "s"), TypeError), (("data", 3), IndexError), (("nope",), KeyError)],
)
def test_edit_frame_needs_a_path_to_an_object(path: tuple[str | int, ...], error: type) -> None:
    with pytest.raises(error):
        edit_frame(RECORDED, path, p=1)
    with pytest.raises(ValueError):
        edit_frame("not json", (), p=1)
