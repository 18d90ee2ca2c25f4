"""Old home of the sink contract, kept so that existing plugins still import; use
:mod:`engine.plugins` (the plugin face) or :mod:`engine.plugins.sink` instead."""

from __future__ import annotations

from engine.plugins.sink import DeliveryFailed, Sink

__all__ = ["DeliveryFailed", "Sink"]
