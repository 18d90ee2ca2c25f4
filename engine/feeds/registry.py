"""Old home of the plugin registry, kept so that existing code still imports; use
:mod:`engine.plugins.registry` instead."""

from __future__ import annotations

from engine.plugins.registry import (
    BUILTIN_PLUGINS,
    FeedRegistry,
    Provided,
    load_registry,
    new_plugin_manager,
)

__all__ = ["BUILTIN_PLUGINS", "FeedRegistry", "Provided", "load_registry", "new_plugin_manager"]
