"""Pure request validation: every bad input is one named error, every good price stays exact."""

from __future__ import annotations

import re
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
        (Decimal("1e3"), "1000"),
        ("42", "42"),
        ("0.000000000000000001", "0.000000000000000001"),
        ("1.000000000000000000", "1"),
        (Decimal("1.000000000000000000000000"), "1"),
        ("123456789012.123456789012345678", "123456789012.123456789012345678"),
        ("999999999999999999.999999999999999999", "999999999999999999.999999999999999999"),
    ],
)
def test_good_prices(value: object, expected: str) -> None:
    assert format(v.PRICE.clean(value, "target_price"), "f") == expected


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
        "0.0",
        "-1",
        " 42 ",  # the string form is plain notation, exactly (the document's pattern)
        "1e3",
        "42\n",
        ".5",
        "007",
        Decimal(0),
        Decimal(-5),
        "0.0000000000000000001",
        "1.0000000000000000000",  # 19 fractional digits as text, even if zeros
        "1_000",
        "0x10",
        "1,5",
        "+5",
        "1" * 19,
        "1e40",
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("1e18"),
        Decimal("396212846246294800000"),
        "396212846246294800000",
        Decimal("1e999999999"),  # the exponent alone refuses it: no work, no overflow
        Decimal("1e-999999999"),
        "1" * 65,
        Decimal("1." + "0" * 100 + "1"),
    ],
)
def test_bad_prices_name_the_field(value: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        v.PRICE.clean(value, "target_price")
    assert info.value.field == "target_price"


@pytest.mark.parametrize(
    "number", [b"1e999999999", b"1e-999999999", b"1e-999999999999999999999", b"-0", b"1E+18"]
)
def test_extreme_json_numbers_are_named_not_crashed(number: bytes) -> None:
    value = v.parse_json_object(b'{"p": ' + number + b"}")["p"]
    with pytest.raises(ValidationFailed) as info:
        v.PRICE.clean(value, "target_price")
    assert info.value.field == "target_price"


@given(
    st.decimals(
        min_value=Decimal("0.000000000000000001"),
        max_value=Decimal("999999999999999999.999999999999999999"),
        places=18,
        allow_nan=False,
        allow_infinity=False,
    ).filter(lambda d: d > 0)
)
def test_prices_round_trip_exactly(value: Decimal) -> None:
    text = (
        format(value, "f").rstrip("0").rstrip(".")
        if "." in format(value, "f")
        else format(value, "f")
    )
    assert re.fullmatch(v.PRICE_PATTERN, text)
    assert v.PRICE.clean(text, "p") == value
    assert v.PRICE.clean(v.parse_json_object(f'{{"p": {text}}}'.encode())["p"], "p") == value


@given(st.text(max_size=40))
def test_the_price_pattern_is_the_rule(text: str) -> None:
    """A string price is accepted exactly when the document's pattern matches it."""
    try:
        v.PRICE.clean(text, "p")
    except ValidationFailed:
        accepted = False
    else:
        accepted = True
    assert accepted == bool(re.fullmatch(v.PRICE_PATTERN, text))


@pytest.mark.parametrize("good", ["a@b.io", "first.last+tag@Example.COM", "x_y@sub.domain.org"])
def test_good_emails(good: str) -> None:
    assert v.EMAIL.clean(good, "email").split("@")[1] == good.split("@")[1].lower()


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
        "a@b.io\n",
        3,
        "a@b." + "c" * 300,
    ],
)
def test_bad_emails(bad: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        v.EMAIL.clean(bad, "email")
    assert info.value.field == "email"


def test_passwords_and_usernames() -> None:
    assert v.PASSWORD.clean("12345678", "password") == "12345678"
    assert v.PASSWORD.clean("é" * 200, "password") == "é" * 200  # bcrypt sees its SHA-256
    for bad in ("1234567", "x" * 257, 12345678):
        with pytest.raises(ValidationFailed):
            v.PASSWORD.clean(bad, "password")
    assert v.USERNAME.clean("alice_01", "username") == "alice_01"
    for bad in ("al", "a" * 151, "al ice", None, "alice\n", "al\x00ice"):
        with pytest.raises(ValidationFailed):
            v.USERNAME.clean(bad, "username")


@pytest.mark.parametrize("bad", ["a\x00b", "\ud800", "tab\there", "x" * 201, "\x9f"])
def test_names_hold_only_storable_text(bad: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        v.NAME.clean(bad, "name")
    assert info.value.field == "name"


@pytest.mark.parametrize(
    "good", ["", "BTC 🚀 to the moon", "<img src=x onerror=alert(1)>", "é" * 200]
)
def test_names_take_any_other_text(good: str) -> None:
    assert v.NAME.clean(good, "name") == good


def test_bodies_check_unknown_then_missing_then_each_field() -> None:
    body = v.Body("T", {"symbol": v.Text(10)}, {"name": v.NAME})
    with pytest.raises(ValidationFailed) as info:
        body.clean({"symbol": "X", "bogus": 1})
    assert info.value.field == "bogus"
    with pytest.raises(ValidationFailed) as info:
        body.clean({"name": "x"})
    assert info.value.field == "symbol"
    with pytest.raises(ValidationFailed) as info:
        body.clean({"symbol": "X", "name": 5})
    assert info.value.field == "name"
    assert body.clean({"symbol": "X"}) == {"symbol": "X"}
    assert body.schema() == {
        "type": "object",
        "properties": {"symbol": v.Text(10).schema(), "name": v.NAME.schema()},
        "required": ["symbol"],
        "additionalProperties": False,
    }


def test_page_params() -> None:
    assert v.page_params({}) == (1, 10)
    assert v.page_params({"page": "3", "page_size": "1000"}) == (3, 100)
    for bad in (
        {"page": "0"},
        {"page": "-1"},
        {"page_size": "x"},
        {"page": "9999999999"},
        {"page": "\uff11"},
    ):
        with pytest.raises(ValidationFailed):
            v.page_params(bad)
    with pytest.raises(ValidationFailed) as info:
        v.page_params({"page": "101"}, max_page=100)
    assert info.value.field == "page"
