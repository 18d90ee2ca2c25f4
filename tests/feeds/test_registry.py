"""engine/plugins/registry.py: built-ins through the hooks, entry points, and every refusal."""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import pytest

from engine.errors import PluginError
from engine.feeds.binance import Binance
from engine.feeds.replay import Replay
from engine.model import Tick
from engine.plugins import Exchange, hookimpl
from engine.plugins.registry import load_registry


class Toy(Exchange):
    name = "toy"
    url = "wss://toy.example/ws"
    options = {"depth": 5}

    def normalise_symbol(self, symbol: str) -> str:
        return symbol.strip().upper().replace("/", "-")

    def subscribe_frames(self, symbols):  # type: ignore[no-untyped-def]
        return [f"sub {' '.join(symbols)}"]

    def unsubscribe_frames(self, symbols):  # type: ignore[no-untyped-def]
        return [f"unsub {' '.join(symbols)}"]

    def parse(self, frame, received_ns):  # type: ignore[no-untyped-def]
        return [Tick(self.name, "X", 1)]


def plugin(**hooks: object) -> types.SimpleNamespace:
    return types.SimpleNamespace(**hooks)


@hookimpl
def toy_exchanges() -> list[type[Exchange]]:
    return [Toy]


def test_builtins_register_through_the_hooks() -> None:
    registry = load_registry(entry_points=False)
    assert registry.exchanges == {"binance": Binance}
    assert registry.sources == {"replay": Replay}
    assert registry.names() == ["binance", "replay"]
    assert registry.normalise("binance", "eth/usdt") == "ETHUSDT"
    with pytest.raises(KeyError):
        registry.normalise("nasdaq", "AAPL")
    sections = registry.sections()
    assert sections["feeds.binance"]["enabled"] is True
    assert sections["feeds.binance"]["stream"] == "trade"
    assert sections["feeds.replay"] == {"enabled": False, "file": "", "speed": 1.0, "loop": False}


def test_extra_plugin_and_its_config_section() -> None:
    registry = load_registry([plugin(triggerbook_exchanges=toy_exchanges)], entry_points=False)
    assert "toy" in registry.names()
    assert registry.normalise("toy", "btc/usd") == "BTC-USD"
    environ = {"TRIGGERBOOK_FEEDS_TOY_ENABLED": "1", "TRIGGERBOOK_FEEDS_TOY_DEPTH": "7"}
    config = registry.load_config(environ=environ)
    assert config.enabled_feeds() == ["binance", "toy"]
    toy = registry.exchange("toy", config.feeds["toy"])
    assert toy.config["depth"] == 7
    assert toy.base_url == "wss://toy.example/ws"


def test_describe_lists_package_and_version() -> None:
    lines = load_registry(entry_points=False).describe()
    assert any(line.startswith("exchange binance") and "triggerbook" in line for line in lines)
    assert any(line.startswith("source") and "replay" in line for line in lines)


def test_duplicate_name_is_refused() -> None:
    @hookimpl
    def triggerbook_exchanges() -> list[type[Exchange]]:
        class Other(Toy):
            name = "binance"

        return [Other]

    with pytest.raises(PluginError, match="two plugins provide the exchange 'binance'"):
        load_registry([plugin(triggerbook_exchanges=triggerbook_exchanges)], entry_points=False)


def test_misspelt_hook_fails_at_start() -> None:
    @hookimpl
    def triggerbook_exchange() -> list[type[Exchange]]:  # missing "s"
        return [Toy]

    with pytest.raises(PluginError, match="triggerbook_exchange"):
        load_registry([plugin(triggerbook_exchange=triggerbook_exchange)], entry_points=False)


def test_hook_with_unknown_argument_is_refused() -> None:
    @hookimpl
    def triggerbook_exchanges(config):  # type: ignore[no-untyped-def]
        return [Toy]

    with pytest.raises(PluginError, match="invalid"):
        load_registry([plugin(triggerbook_exchanges=triggerbook_exchanges)], entry_points=False)


def test_hook_returning_a_non_exchange_is_refused() -> None:
    @hookimpl
    def triggerbook_exchanges() -> list[object]:
        return [Replay]

    with pytest.raises(PluginError, match="not a Exchange subclass"):
        load_registry([plugin(triggerbook_exchanges=triggerbook_exchanges)], entry_points=False)


def test_unknown_feed_names_raise_plugin_error() -> None:
    registry = load_registry(entry_points=False)
    with pytest.raises(PluginError, match="no plugin provides the exchange 'toy'"):
        registry.exchange("toy", {})
    with pytest.raises(PluginError, match="source"):
        registry.source("binance", {})


def _install_fake_distribution(root: Path, name: str, module_source: str) -> None:
    (root / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = root / f"{name}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[triggerbook]\n{name} = {name}\n")


def test_entry_point_plugins_are_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake_distribution(
        tmp_path,
        "tb_fake_gold",
        """
        from engine.plugins import FeedSource
        from engine.plugins import hookimpl

        class Gold(FeedSource):
            name = "gold"
            provides = ("lbma",)

            async def run(self, ticks, demand, state, metrics, *, task_status):
                task_status.started()

        @hookimpl
        def triggerbook_feed_sources():
            return [Gold]
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry()
    assert "gold" in registry.sources
    assert {"gold", "lbma"} <= set(registry.names())
    assert registry.normalise("lbma", "xau") == "XAU"
    with pytest.raises(ValueError, match="not a symbol of lbma"):
        registry.normalise("lbma", " xau ")
    assert any("tb_fake_gold 1.2.3" in line for line in registry.describe())
    sys.modules.pop("tb_fake_gold", None)


def test_broken_entry_point_is_a_plugin_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_distribution(tmp_path, "tb_fake_broken", "import no_such_module_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="failed to import"):
        load_registry()
