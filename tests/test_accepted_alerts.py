"""Whatever the API accepts, the engine honours: a property over the whole range of a create.

Hypothesis sends create bodies from every corner (prices as strings and as JSON numbers, huge,
tiny, with extreme exponents and too many digits; names with odd text; symbols spelt many ways)
to the real engine (``run_engine``: real store, book, feed, web) and holds every answer to one
promise: a 201 is a live alert that the book holds with the same target, that is still there
after a restart, and that fires when a local Binance server sends a trade at its target (with a
price on the right side of it); anything else is a 4xx problem that changed nothing. This is the
test through which "one request stops every later start" would have been caught.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine import limits
from engine.app import Engine, run_engine
from engine.feeds.testing import read_binance_request, serve_exchange
from engine.plugins.registry import load_registry
from tests.test_end_to_end import PASSWORD, engine_config, login, trade, wait_for_status

SYMBOLS = ["BTCUSDT", "ETHUSDT", "btc/usdt", "eth-usdt", "SOL_USDT"]
CANONICAL = {"BTCUSDT": "BTCUSDT", "ETHUSDT": "ETHUSDT", "btc/usdt": "BTCUSDT",
             "eth-usdt": "ETHUSDT", "SOL_USDT": "SOLUSDT"}  # fmt: skip

decimals = st.one_of(
    # anything Decimal can say, exponents from tiny to huge
    st.builds(
        lambda digits, exponent: Decimal(digits).scaleb(exponent),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.integers(min_value=-60, max_value=60),
    ),
    # the edges of the range, and one step past them
    st.sampled_from(
        [
            limits.MIN_PRICE,
            limits.MAX_PRICE,
            limits.PRICE_BOUND,
            limits.MIN_PRICE / 10,
            Decimal("396212846246294800000"),
            Decimal("70000.10"),
            Decimal("1.000000000000000000000"),
        ]
    ),
)
in_range = st.decimals(
    min_value=limits.MIN_PRICE, max_value=limits.MAX_PRICE, places=limits.PRICE_FRACTION_DIGITS
)
prices = st.one_of(
    in_range.map(lambda d: format(d, "f")),  # valid, as a string and as a JSON number
    in_range.map(lambda d: ("number", format(d, "f"))),
    decimals.map(lambda d: format(d, "f")),  # a string in plain notation
    decimals.map(str),  # a string, maybe with an exponent (refused: not plain notation)
    decimals.map(lambda d: ("number", str(d))),  # a raw JSON number, exactly as written
    st.sampled_from(["1e999999999", "1e-999999999", "1e-999999999999999999999"]).map(
        lambda t: ("number", t)
    ),
    st.text(max_size=8),
)
names = st.one_of(
    st.just(None), st.text(max_size=8), st.sampled_from(["a\x00b", "\ud800", "x" * 201])
)
bodies = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(SYMBOLS),
        "target_price": prices,
        "direction": st.sampled_from(["above", "below"]),
    },
    optional={"name": names},
)


def encode(body: dict[str, Any]) -> bytes:
    """The body as JSON, a ``("number", text)`` price written as a bare JSON number."""
    price = body["target_price"]
    placeholder = "__PRICE__"
    raw = {k: val for k, val in body.items() if val is not None}
    if isinstance(price, tuple):
        raw["target_price"] = placeholder
        text = json.dumps(raw, ensure_ascii=True)
        return text.replace(json.dumps(placeholder), price[1]).encode()
    return json.dumps(raw, ensure_ascii=True).encode()


async def _create_all(
    client: httpx.AsyncClient, headers: dict[str, str], cases: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    accepted = []
    for body in cases:
        response = await client.post(
            "/api/alerts",
            content=encode(body),
            headers={**headers, "content-type": "application/json"},
        )
        assert response.status_code in (201, 422), (body, response.status_code, response.text)
        if response.status_code == 201:
            alert = response.json()
            assert alert["symbol"] == CANONICAL[body["symbol"]]
            assert limits.price_problem(Decimal(alert["target_price"])) is None
            accepted.append(alert)
        else:
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["field"] in ("target_price", "name"), response.text
    return accepted


def _in_book(engine: Engine, alerts: list[dict[str, Any]]) -> None:
    for alert in alerts:
        trigger = engine.parts.book.get(alert["id"])
        assert trigger is not None, alert
        assert trigger.target == Decimal(alert["target_price"])
        assert trigger.direction.value == alert["direction"]
    assert len(engine.parts.book) == len(alerts)
    engine.parts.book._check()


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cases=st.lists(bodies, min_size=1, max_size=25))
async def test_every_accepted_create_is_held_survives_a_restart_and_fires(
    tmp_path_factory: Any, fresh_database: Any, cases: list[dict[str, Any]]
) -> None:
    tmp_path: Path = tmp_path_factory.mktemp("accepted")
    database = await fresh_database()
    registry = load_registry()
    with trio.fail_after(60):
        async with serve_exchange(read_binance_request) as server:
            config = engine_config(tmp_path, database, server)
            async with trio.open_nursery() as nursery:
                engine: Engine = await nursery.start(run_engine, config, registry)
                base = f"http://127.0.0.1:{engine.http_port}"
                async with httpx.AsyncClient(base_url=base) as client:
                    headers = await login(client, "prop")
                    accepted = await _create_all(client, headers, cases)
                    event(f"accepted {min(len(accepted), 3)}+ of {min(len(cases), 3)}+")
                _in_book(engine, accepted)
                nursery.cancel_scope.cancel()
            await server.wait_until(lambda: not server.live)

            async with trio.open_nursery() as nursery:
                engine = await nursery.start(run_engine, config, registry)
                _in_book(engine, accepted)  # the next start holds the same, and starts at all
                symbols = {a["symbol"] for a in accepted}
                await server.wait_until(lambda: server.subscribed() == symbols)
                for n, alert in enumerate(accepted, start=1):
                    await server.send_for(
                        alert["symbol"], trade(alert["symbol"], alert["target_price"], n)
                    )
                base = f"http://127.0.0.1:{engine.http_port}"
                async with httpx.AsyncClient(base_url=base) as client:
                    response = await client.post(
                        "/api/auth/login", json={"username": "prop", "password": PASSWORD}
                    )
                    headers = {"Authorization": f"Bearer {response.json()['access']}"}
                    for alert in accepted:
                        got = await wait_for_status(client, headers, alert["id"], "triggered")
                        fired = Decimal(str(got["triggered_price"]))
                        target = Decimal(str(got["target_price"]))
                        assert fired >= target if got["direction"] == "above" else fired <= target
                nursery.cancel_scope.cancel()
