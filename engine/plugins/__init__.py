"""The plugin face: everything a triggerbook plugin imports, from one place.

A plugin (an exchange, a price source, a notification sink) is a package in the ``triggerbook``
entry-point group whose module has ``@hookimpl`` functions (:mod:`engine.plugins.hookspecs`)
returning its classes::

    from engine.plugins import Exchange, Tick, hookimpl

    class Example(Exchange):
        ...

    @hookimpl
    def triggerbook_exchanges():
        return [Example]

Here: the hook marker, the three contracts (:class:`Exchange` and its :class:`SymbolRules`, pure
data with no I/O; :class:`FeedSource`, a source with its own actor; :class:`Sink`), the values
they exchange with the engine (:class:`Tick`; :class:`Notification` and its :class:`Destination`),
and the errors a plugin raises (:class:`BadFrame`, :class:`SubscriptionRejected`,
:class:`FeedClosed`; :class:`DeliveryFailed`, :class:`SinkUnavailable`, :class:`DeliveryRefused`,
:class:`DestinationGone`; :class:`ConfigError` for a bad ``[feeds.<name>]`` option).

A sink that writes for people takes its words from :mod:`engine.plugins.text` (``subject``,
``text_body``, ``details``), as the built-in sinks do. Beside this face a plugin may use
``engine.feeds.parsing`` (the shared frame-reading helpers: exact JSON decoding, a handler per
message type, exact prices and timestamps, ``edit_frame`` for tests) and, in its tests,
``engine.feeds.testing`` (the conformance kit). Nothing else of the engine: the import-linter
contract ``plugins-use-the-contract`` in ``pyproject.toml`` holds the in-tree plugins to that. The
registry that finds plugins (:mod:`engine.plugins.registry`) is the engine's side and not part of
this face.

Importing this package imports no WebSocket library: the exchange contract checks its URL with
the pure :func:`engine.plugins.urls.split_ws_url`.
"""

from __future__ import annotations

from engine.errors import (
    BadFrame,
    ConfigError,
    DeliveryFailed,
    DeliveryRefused,
    DestinationGone,
    FeedClosed,
    SinkUnavailable,
    SubscriptionRejected,
)
from engine.model import Destination, Notification, OutboxRow, Tick
from engine.plugins.exchange import Exchange, SymbolRules, any_case
from engine.plugins.hookspecs import hookimpl
from engine.plugins.sink import Sink
from engine.plugins.source import FeedSource

__all__ = [
    "BadFrame",
    "ConfigError",
    "DeliveryFailed",
    "DeliveryRefused",
    "Destination",
    "DestinationGone",
    "Exchange",
    "FeedClosed",
    "FeedSource",
    "Notification",
    "OutboxRow",
    "Sink",
    "SinkUnavailable",
    "SubscriptionRejected",
    "SymbolRules",
    "Tick",
    "any_case",
    "hookimpl",
]
