"""The sink seam: a plugin's sinks are collected, listed and validated like feeds."""

from __future__ import annotations

import types

import pytest

from engine.errors import PluginError
from engine.model import Notification
from engine.plugins import Sink, hookimpl
from engine.plugins.registry import BUILTIN_PLUGINS, load_registry


class Pager(Sink):
    name = "pager"
    options = {"number": ""}

    async def deliver(self, note: Notification) -> None:
        self.delivered = note


@hookimpl
def pager_sinks() -> list[type[Sink]]:
    return [Pager]


def test_a_plugin_sink_is_collected_and_listed() -> None:
    registry = load_registry(
        [types.SimpleNamespace(triggerbook_sinks=pager_sinks)], entry_points=False
    )
    sinks = [p for p in registry.provided if p.kind == "sink" and p.plugin not in BUILTIN_PLUGINS]
    assert [(p.name, p.cls) for p in sinks] == [("pager", Pager)]
    assert registry.sinks["pager"] is Pager
    assert registry.sections()["sinks.pager"]["number"] == ""
    assert registry.sink("pager", {"number": "1"}).config["number"] == "1"
    assert any(line.startswith("sink") and "pager" in line for line in registry.describe())
    assert Pager.config_section() == {
        "enabled": False,
        "concurrency": 8,
        "timeout_s": 30.0,
        "max_attempts": 12,
        "number": "",
    }
    assert Pager({"number": "123"}).config["number"] == "123"
    assert Pager({"number": "123"}).config["max_attempts"] == 12


def test_a_sink_hook_returning_a_non_sink_is_refused() -> None:
    @hookimpl
    def triggerbook_sinks() -> list[type]:
        return [dict]

    with pytest.raises(PluginError, match="not a Sink subclass"):
        load_registry([types.SimpleNamespace(triggerbook_sinks=triggerbook_sinks)])


def test_two_sinks_with_one_name_are_refused() -> None:
    class Other(Pager):
        pass

    @hookimpl
    def triggerbook_sinks() -> list[type[Sink]]:
        return [Other]

    extra = [
        types.SimpleNamespace(triggerbook_sinks=pager_sinks),
        types.SimpleNamespace(triggerbook_sinks=triggerbook_sinks),
    ]
    with pytest.raises(PluginError, match="two plugins provide the sink 'pager'"):
        load_registry(extra, entry_points=False)
