"""Every hook a triggerbook plugin can implement, in one module.

pluggy project name ``triggerbook``; third-party packages register through the ``triggerbook``
entry-point group, built-ins through the same hooks (``engine.plugins.registry.BUILTIN_PLUGINS``,
like pytest's ``default_plugins``). ``pm.check_pending()`` runs at start, so an implementation
whose name matches no spec here (a misspelt hook) fails loudly with a
:class:`engine.errors.PluginError`.

A plugin is any module or object with ``@hookimpl`` functions named like the specs below::

    from engine.plugins import hookimpl

    @hookimpl
    def triggerbook_exchanges():
        return [Kraken]

Hooks are synchronous: pluggy calls them once at start and collects every plugin's answer into a
list. They return classes or objects; the engine runs their async parts (a feed's connection, a
sink's delivery loop) in its own nursery, so a plugin never owns a task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from engine.plugins.exchange import Exchange
    from engine.plugins.sink import Sink
    from engine.plugins.source import FeedSource

PROJECT = "triggerbook"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -------------------------------------------------------------------------------------------------
# feeds
# -------------------------------------------------------------------------------------------------


@hookspec
def triggerbook_exchanges() -> Sequence[type[Exchange]]:
    """Return the WebSocket exchanges this plugin provides.

    Called once at start; every plugin's list is collected (not ``firstresult``). Each class is
    instantiated with its ``[feeds.<name>]`` table when enabled, and driven by the shared feed
    runner. Two exchanges with one ``name`` is a :class:`engine.errors.PluginError`.
    """


@hookspec
def triggerbook_feed_sources() -> Sequence[type[FeedSource]]:
    """Return price sources that are not WebSocket exchanges and bring their own actor.

    Called once at start; every plugin's list is collected. Each class is instantiated with its
    ``[feeds.<name>]`` table when enabled, and its ``async run(...)`` is started in the engine's
    nursery (see :class:`engine.plugins.source.FeedSource`).
    """


# -------------------------------------------------------------------------------------------------
# sinks
# -------------------------------------------------------------------------------------------------


@hookspec
def triggerbook_sinks() -> Sequence[type[Sink]]:
    """Return the notification sinks this plugin provides.

    Called once at start; every plugin's list is collected. A sink's ``name`` is the outbox
    channel it delivers (see :class:`engine.plugins.sink.Sink`). Two sinks with one ``name`` is a
    :class:`engine.errors.PluginError`.
    """
