"""Pure request validation: every bad input is one named error, every good price stays exact."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import MalformedRequest, ValidationFailed
from web import validation as v


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b'"x"',
        b"1",
        b"null",
        b"\xff\xfe",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": 1, "a": 2}',
        b"[" * 100_000,
    ],
)
def test_bodies_that_are_not_one_object_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        v.parse_json_object(body)


def test_numbers_parse_as_exact_decimals() -> None:
    body = v.parse_json_object(b'{"p": 0.1, "q": 70000, "r": 1e-3}')
    assert body == {"p": Decimal("0.1"), "q": Decimal(70000), "r": Decimal("0.001")}
    assert all(isinstance(x, Decimal) for x in body.values())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("70000.50", "70000.5"),
        (Decimal("0.1"), "0.1"),
        ("1e3", "1000"),
        (" 42 ", "42"),
        ("0.000000000000000001", "0.000000000000000001"),
        ("1.000000000000000000000000", "1"),
        ("123456789012.123456789012345678", "123456789012.123456789012345678"),
    ],
)
def test_good_prices(value: object, expected: str) -> None:
    assert format(v.price(value), "f") == expected


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        None,
        [],
        {},
        "",
        "abc",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "sNaN",
        "0",
        "-1",
        Decimal(0),
        Decimal(-5),
        "0.0000000000000000001",
        "1_000",
        "0x10",
        "1,5",
        "+5",
        "1" * 31,
        "1e40",
        Decimal("NaN"),
        Decimal("Infinity"),
        "1" * 65,
        Decimal("1." + "0" * 100 + "1"),
    ],
)
def test_bad_prices_name_the_field(value: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        v.price(value, "target_price")
    assert info.value.field == "target_price"


@given(
    st.decimals(
        min_value=Decimal("0.000000000000000001"),
        max_value=Decimal("999999999999"),
        places=18,
        allow_nan=False,
        allow_infinity=False,
    ).filter(lambda d: d > 0)
)
def test_prices_round_trip_exactly(value: Decimal) -> None:
    parsed = v.price(format(value, "f"))
    assert parsed == value
    assert v.price(v.parse_json_object(f'{{"p": {format(value, "f")}}}'.encode())["p"]) == value


@pytest.mark.parametrize("good", ["BTCUSDT", "btc-usd", "BTC/USDT", "eth_btc", "A" * 32])
def test_good_symbols(good: str) -> None:
    assert v.symbol(good) == good


@pytest.mark.parametrize("bad", ["", "A" * 33, "BTC USDT", "BTC;DROP", "é", 5, None, "../x"])
def test_bad_symbols(bad: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        v.symbol(bad)
    assert info.value.field == "symbol"


@pytest.mark.parametrize("good", ["a@b.io", "first.last+tag@Example.COM", "x_y@sub.domain.org"])
def test_good_emails(good: str) -> None:
    assert v.email(good).split("@")[1] == good.split("@")[1].lower()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plain",
        "a@b",
        "a@@b.io",
        "a b@c.io",
        ".a@b.io",
        "a..b@c.io",
        "a@-b.io",
        3,
        "a@b." + "c" * 300,
    ],
)
def test_bad_emails(bad: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        v.email(bad)
    assert info.value.field == "email"


def test_passwords_and_usernames() -> None:
    assert v.password("12345678") == "12345678"
    for bad in ("1234567", "é" * 37, 12345678):
        with pytest.raises(ValidationFailed):
            v.password(bad)
    assert v.username("alice_01") == "alice_01"
    for bad in ("al", "a" * 151, "al ice", None):
        with pytest.raises(ValidationFailed):
            v.username(bad)


def test_fields_unknown_then_missing() -> None:
    with pytest.raises(ValidationFailed) as info:
        v.check_fields({"symbol": "X", "bogus": 1}, required=("symbol", "target_price"))
    assert info.value.field == "bogus"
    with pytest.raises(ValidationFailed) as info:
        v.check_fields({"symbol": "X"}, required=("symbol", "target_price"))
    assert info.value.field == "target_price"


def test_page_params() -> None:
    assert v.page_params({}) == (1, 10)
    assert v.page_params({"page": "3", "page_size": "1000"}) == (3, 100)
    for bad in ({"page": "0"}, {"page": "-1"}, {"page_size": "x"}, {"page": "9999999999"}):
        with pytest.raises(ValidationFailed):
            v.page_params(bad)
