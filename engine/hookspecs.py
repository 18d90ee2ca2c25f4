"""Old home of the hook specs, kept so that existing plugins still import; use
:mod:`engine.plugins` (the plugin face) or :mod:`engine.plugins.hookspecs` instead."""

from __future__ import annotations

from engine.plugins.hookspecs import (
    PROJECT,
    hookimpl,
    hookspec,
    triggerbook_exchanges,
    triggerbook_feed_sources,
    triggerbook_sinks,
)

__all__ = [
    "PROJECT",
    "hookimpl",
    "hookspec",
    "triggerbook_exchanges",
    "triggerbook_feed_sources",
    "triggerbook_sinks",
]
