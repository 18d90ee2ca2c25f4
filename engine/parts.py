"""The engine's parts in one bag: what ``engine/app.py`` builds once and hands to the web.

The web and the tests are handed this one object instead of each repeating the list of parts.
It lives here, below ``engine.app`` and imported by ``web.context``, so both the engine's root
and the web can name it without an import cycle; it imports its field types for the type checker
only, so importing it loads no other module.

The bound HTTP port is not a part: it is known only once the web has started, after the bag is
built, so :class:`engine.app.Engine` (what ``run_engine`` reports) carries the bag and the port.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trio

    from engine.book.actor import Demand, LastPrices
    from engine.book.book import TriggerBook
    from engine.book.history import PriceHistory
    from engine.config import Config
    from engine.events import FirePublisher
    from engine.feeds.status import FeedStates
    from engine.feeds.symbols import SymbolDirectory
    from engine.metrics import Metrics
    from engine.model import BookCommand
    from engine.plugins.registry import FeedRegistry
    from engine.quarantine import Quarantine
    from engine.sinks.delivery import Delivery
    from engine.store import Store


@dataclass(frozen=True, slots=True)
class Parts:
    """The running engine's parts, built once by :func:`engine.app.run_engine`.

    ``commands`` is the book's command channel (the web writes through the store first, then
    sends); ``prices`` the last price per symbol, ``history`` its recent points (the same object
    as ``prices.history``), ``demand`` the symbols the book holds triggers
    for (the feeds subscribe them), ``symbols`` each exchange's traded symbols, ``delivery`` the
    sinks' loops (what a fire queues, a test notification sent now, the channels that are down).
    """

    config: Config
    store: Store
    book: TriggerBook
    commands: trio.MemorySendChannel[BookCommand]
    prices: LastPrices
    history: PriceHistory
    demand: Demand
    feeds: FeedRegistry
    feed_states: FeedStates
    symbols: SymbolDirectory
    delivery: Delivery
    metrics: Metrics
    quarantine: Quarantine
    fires: FirePublisher  # committed fires, announced by the recorder (the web's stream listens)
