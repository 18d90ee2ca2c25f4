"""The plugin manager and what it found: every exchange, source and sink, by name.

``load_registry`` builds one pluggy ``PluginManager`` (project ``triggerbook``): the hook specs,
the built-in plugins (``BUILTIN_PLUGINS``, registered through the same hooks a third party
uses), any ``extra_plugins`` (tests), then every package in the ``triggerbook`` entry-point
group, then ``check_pending()``. Nothing is started here; the registry only holds classes and
builds instances for the runner.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from engine.config import Config, load_config
from engine.errors import PluginError
from engine.plugins import hookspecs
from engine.plugins.exchange import Exchange, SymbolRules
from engine.plugins.sink import Sink
from engine.plugins.source import FeedSource

log = logging.getLogger(__name__)

# Built-in plugins, registered like third-party ones (cf. pytest's ``default_plugins``).
BUILTIN_PLUGINS: tuple[str, ...] = (
    "engine.feeds.binance",
    "engine.feeds.replay",
    "engine.sinks.console",
    "engine.sinks.email",
    "engine.sinks.webhook",
)


@dataclass(frozen=True, slots=True)
class Provided:
    """One class a plugin provided, with where it came from (for ``triggerbook plugins``)."""

    kind: str  # "exchange" | "source" | "sink"
    name: str
    cls: type
    plugin: str
    package: str
    version: str


class FeedRegistry:
    """Every loaded exchange, source and sink class by name, and the plugin manager that found
    them.

    Built by :func:`load_registry`; immutable afterwards.
    """

    def __init__(self, pm: pluggy.PluginManager, provided: list[Provided]) -> None:
        self.pm = pm
        self.provided = provided
        self.exchanges: dict[str, type[Exchange]] = {}
        self.sources: dict[str, type[FeedSource]] = {}
        self.sinks: dict[str, type[Sink]] = {}
        for item in provided:
            if item.kind == "exchange":
                self.exchanges[item.name] = item.cls
            elif item.kind == "source":
                self.sources[item.name] = item.cls
            else:
                self.sinks[item.name] = item.cls
        # Default-configured instances, only for their pure methods (the symbol rules).
        self._described: dict[str, SymbolRules] = {
            **{n: c() for n, c in self.sources.items()},
            **{n: c() for n, c in self.exchanges.items()},
        }
        # Exchanges only emitted by a source (``FeedSource.provides``) follow the generic rules.
        for cls in self.sources.values():
            for emitted in cls.provides:
                if emitted not in self._described:
                    self._described[emitted] = _Generic(emitted)

    def names(self) -> list[str]:
        """Every exchange name an alert may name: each registered exchange and source, and the
        exchanges sources declare they emit (``FeedSource.provides``)."""
        names = set(self.exchanges) | set(self.sources)
        for cls in self.sources.values():
            names.update(cls.provides)
        return sorted(names)

    def normalise(self, exchange: str, symbol: str) -> str:
        """``symbol`` as ``exchange`` spells it (``btc/usdt`` -> ``BTCUSDT`` on Binance).

        Raises ``KeyError`` for an exchange no plugin provides and ``ValueError``, with a human
        reason, for a symbol the exchange cannot spell (one that does not match
        :meth:`symbol_pattern`, Kraken's ``xbt`` without a quote currency, ...).
        """
        rules = self._rules(exchange)
        # check_symbol again: a third-party plugin may override normalise_symbol itself.
        return rules.check_symbol(rules.normalise_symbol(symbol))

    def symbol_pattern(self, exchange: str) -> str:
        """The symbols a request may send for ``exchange``: an anchored regex, ECMA-262
        compatible (no lookarounds, no flags), for the OpenAPI document. :meth:`normalise`
        accepts exactly the strings of at most ``engine.limits.SYMBOL_MAX`` characters that match
        it. Raises ``KeyError`` for an exchange no plugin provides."""
        return self._rules(exchange).input_pattern

    def canonical_pattern(self, exchange: str) -> str:
        """The exchange's own spelling (what :meth:`normalise` returns and alerts store), as a
        regex like :meth:`symbol_pattern`. Raises ``KeyError`` as it does."""
        return self._rules(exchange).symbol_pattern

    def symbol_rule(self, exchange: str) -> str:
        """The exchange's spelling in words (``BASE/QUOTE, such as BTC/USD``)."""
        return self._rules(exchange).symbol_rule

    def _rules(self, exchange: str) -> SymbolRules:
        rules = self._described.get(exchange)
        if rules is None:
            raise KeyError(exchange)
        return rules

    def sections(self) -> dict[str, dict[str, Any]]:
        """``{"feeds.<name>": {enabled, url, ...}, "sinks.<name>": {enabled, ...}}`` for
        ``load_config``: every plugin declares its own table."""
        out: dict[str, dict[str, Any]] = {}
        for name, cls in sorted(self.exchanges.items()):
            out[f"feeds.{name}"] = cls.config_section()
        for name, src in sorted(self.sources.items()):
            out[f"feeds.{name}"] = src.config_section()
        for name, sink in sorted(self.sinks.items()):
            out[f"sinks.{name}"] = sink.config_section()
        return out

    def load_config(
        self, path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> Config:
        """The engine's configuration, validated against the core schema and these plugins'
        sections. Raises :class:`engine.errors.ConfigError` (see ``engine.config.load_config``)."""
        return load_config(path, environ=environ, plugin_sections=self.sections())

    def describe(self) -> list[str]:
        """One line per loaded exchange, source and sink: kind, name, package and version."""
        width = max((len(p.name) for p in self.provided), default=0)
        return [
            f"{p.kind:<8} {p.name:<{width}}  {p.package} {p.version}  ({p.plugin})"
            for p in sorted(self.provided, key=lambda p: (p.kind, p.name))
        ]

    def is_exchange(self, name: str) -> bool:
        """Whether ``name`` is a WebSocket exchange (driven by the shared runner)."""
        return name in self.exchanges

    def exchange(self, name: str, config_table: Mapping[str, Any] | None = None) -> Exchange:
        """A fresh instance of exchange ``name`` configured by its table.

        Raises :class:`PluginError` if no plugin provides it.
        """
        cls = self.exchanges.get(name)
        if cls is None:
            raise PluginError(f"no plugin provides the exchange {name!r} (loaded: {self.names()})")
        return cls(config_table)

    def sink(self, name: str, config_table: Mapping[str, Any] | None = None) -> Sink:
        """A fresh instance of sink ``name``; raises :class:`PluginError` if none provides it."""
        cls = self.sinks.get(name)
        if cls is None:
            raise PluginError(f"no plugin provides the sink {name!r}")
        return cls(config_table)

    def source(self, name: str, config_table: Mapping[str, Any] | None = None) -> FeedSource:
        """A fresh instance of source ``name``; raises :class:`PluginError` if none provides it."""
        cls = self.sources.get(name)
        if cls is None:
            raise PluginError(f"no plugin provides the feed source {name!r}")
        return cls(config_table)


class _Generic(SymbolRules):
    """The rules of an exchange only known as emitted by a source: the generic ones."""

    def __init__(self, name: str) -> None:
        self.name = name  # type: ignore[misc]  # a ClassVar on plugins, per instance here


def new_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with triggerbook's hook specs and nothing registered."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def load_registry(
    extra_plugins: Iterable[object] = (), *, entry_points: bool = True
) -> FeedRegistry:
    """Load every plugin and return the registry of what they provide.

    Order: built-ins, ``extra_plugins`` (modules or objects with ``@hookimpl`` functions), then
    the ``triggerbook`` entry-point group (skipped with ``entry_points=False``), then
    ``check_pending()``.

    Raises :class:`PluginError` for a hook implementation no spec matches (a misspelt hook or
    wrong arguments), a hook returning something that is not an Exchange/FeedSource subclass,
    two classes with one name, or an entry point that fails to import.
    """
    pm = new_plugin_manager()
    try:
        for module_name in BUILTIN_PLUGINS:
            pm.register(importlib.import_module(module_name), name=module_name)
        for plugin in extra_plugins:
            pm.register(plugin)
        if entry_points:
            pm.load_setuptools_entrypoints(hookspecs.PROJECT)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {exc.plugin!r} is invalid: {exc}") from None
    except ImportError as exc:
        raise PluginError(f"a triggerbook plugin failed to import: {exc}") from None
    except ValueError as exc:  # pluggy: a plugin name or object registered twice
        raise PluginError(str(exc)) from None
    return FeedRegistry(pm, _collect(pm))


def _collect(pm: pluggy.PluginManager) -> list[Provided]:
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    own_version = _own_version()
    specs = [
        ("exchange", "triggerbook_exchanges", Exchange),
        ("source", "triggerbook_feed_sources", FeedSource),
        ("sink", "triggerbook_sinks", Sink),
    ]
    provided: list[Provided] = []
    seen: dict[str, Provided] = {}
    for kind, hook_name, base in specs:
        # Called impl by impl (not through pm.hook) to know which plugin gave which class.
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            dist = dists.get(id(impl.plugin))
            package, version = (
                (dist.project_name, dist.version)
                if dist is not None
                else ("triggerbook", own_version)
            )
            for cls in impl.function() or ():
                if not (isinstance(cls, type) and issubclass(cls, base)):
                    raise PluginError(
                        f"plugin {impl.plugin_name!r}: {hook_name} returned {cls!r}, "
                        f"not a {base.__name__} subclass"
                    )
                name = getattr(cls, "name", cls.__name__)
                key = f"{'feed' if kind != 'sink' else 'sink'}:{name}"
                item = Provided(kind, name, cls, impl.plugin_name, package, version)
                if key in seen:
                    other = seen[key]
                    raise PluginError(
                        f"two plugins provide the {kind} {name!r}: {other.plugin} "
                        f"({other.package}) and {item.plugin} ({item.package})"
                    )
                seen[key] = item
                provided.append(item)
    return provided


def _own_version() -> str:
    try:
        return metadata.version("triggerbook")
    except metadata.PackageNotFoundError:
        return "unknown"
