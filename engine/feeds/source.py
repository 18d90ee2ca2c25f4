"""Old home of the feed source contract, kept so that existing plugins still import; use
:mod:`engine.plugins` (the plugin face) or :mod:`engine.plugins.source` instead."""

from __future__ import annotations

from engine.plugins.source import FeedSource

__all__ = ["FeedSource"]
