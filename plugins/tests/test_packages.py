"""What every exchange plugin package here promises alike, checked once over all four.

Each package's own tests (``plugins/triggerbook-*/tests``) cover what is its own: frames, symbols,
requests, errors, the conversation through the runner. This file covers the parts of the plugin
contract that are the same logic in each: the hook and the entry point register the exchange, the
``url`` key is the connect URL, and a channel outside the exchange's list is a configuration error.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from types import ModuleType

import pytest
import triggerbook_coinbase
import triggerbook_finnhub
import triggerbook_kraken
import triggerbook_okx

from engine.errors import ConfigError
from engine.feeds.testing import infer_read_request
from engine.plugins import Exchange

PACKAGES: list[tuple[ModuleType, type[Exchange]]] = [
    (triggerbook_coinbase, triggerbook_coinbase.Coinbase),
    (triggerbook_kraken, triggerbook_kraken.Kraken),
    (triggerbook_okx, triggerbook_okx.Okx),
    (triggerbook_finnhub, triggerbook_finnhub.Finnhub),
]


@pytest.mark.parametrize(("module", "exchange"), PACKAGES)
def test_hook_and_entry_point(module: ModuleType, exchange: type[Exchange]) -> None:
    assert list(module.triggerbook_exchanges()) == [exchange]
    names = {ep.name: ep.value for ep in entry_points(group="triggerbook")}
    assert names.get(exchange.name) == module.__name__


@pytest.mark.parametrize(
    ("exchange", "configured", "default"),
    [
        (triggerbook_coinbase.Coinbase, "ws://127.0.0.1:1", "wss://ws-feed.exchange.coinbase.com"),
        (triggerbook_kraken.Kraken, "ws://127.0.0.1:9/v2", "wss://ws.kraken.com/v2"),
        (triggerbook_okx.Okx, "ws://127.0.0.1:5/ws", "wss://ws.okx.com:8443/ws/v5/public"),
    ],
)
def test_url_from_config(exchange: type[Exchange], configured: str, default: str) -> None:
    assert exchange({"url": configured}).connect_url() == configured
    assert exchange().connect_url() == default == exchange.url


@pytest.mark.parametrize(
    ("exchange", "channel"),
    [
        (triggerbook_coinbase.Coinbase, "level2"),
        (triggerbook_kraken.Kraken, "book"),
        (triggerbook_okx.Okx, "books"),
    ],
)
def test_unknown_channel_is_a_config_error(exchange: type[Exchange], channel: str) -> None:
    with pytest.raises(ConfigError, match="channel") as info:
        exchange({"channel": channel})
    assert f"[feeds.{exchange.name}]" in str(info.value)


@pytest.mark.parametrize(("module", "exchange"), PACKAGES)
def test_unnumbered_frames_keep_to_symbols_per_message_too(
    module: ModuleType, exchange: type[Exchange]
) -> None:
    """The runner of old passes a whole change to ``subscribe_frames``; no frame may carry more
    than ``symbols_per_message`` symbols either way (read back by the kit's server side)."""
    ex = exchange({"token": "t"} if exchange.name == "finnhub" else None)
    read = infer_read_request(ex)
    symbols = [f"K{i:04d}-USD" for i in range(2 * ex.symbols_per_message + 1)]
    for frames, op in (
        (ex.subscribe_frames(symbols), "subscribe"),
        (ex.unsubscribe_frames(symbols), "unsubscribe"),
    ):
        requests = [read(f) for f in frames]
        assert all(r is not None and r.op == op for r in requests)
        assert max(len(r.symbols) for r in requests if r) == ex.symbols_per_message
        assert [s for r in requests if r for s in r.symbols] == symbols
