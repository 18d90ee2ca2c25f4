"""A price source that is not a WebSocket exchange and so brings its own actor.

Where an :class:`engine.plugins.exchange.Exchange` is pure description driven by the shared runner,
a ``FeedSource`` owns its loop: a recorded file (``replay``), a REST poller, a vendor SDK. The
engine instantiates it with its ``[feeds.<name>]`` table and starts ``run`` in the feeds' nursery
with ``await nursery.start(...)``; the source never starts a task of its own outside ``run``.

Example (a source that emits one fixed price per second)::

    class Fixed(FeedSource):
        name = "fixed"
        options = {"symbol": "GOLD", "price": "2300.5"}

        async def run(self, ticks, demand, state, metrics, *, task_status=trio.TASK_STATUS_IGNORED):
            state.mark_connected()
            task_status.started()
            while True:
                symbol, price = self.config["symbol"], Decimal(self.config["price"])
                await ticks.send(Tick(self.name, symbol, price, received_ns=time.monotonic_ns()))
                await trio.sleep(1)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import trio

from engine.model import Tick
from engine.plugins.exchange import SymbolRules

if TYPE_CHECKING:
    from engine.book.demand import DemandView
    from engine.feeds.status import FeedState
    from engine.metrics import Metrics


class FeedSource(SymbolRules, ABC):
    """Base class of sources with their own actor.

    ``options`` are the keys of the source's ``[feeds.<name>]`` table beyond ``enabled``, with
    their defaults. ``provides`` names the exchanges whose ticks the source emits beyond its own
    ``name`` (alerts may name them); most sources leave it empty. Symbols follow
    :class:`~engine.plugins.exchange.SymbolRules` (default: the generic rules, upper-cased).

    The runner hands ``run`` a tick channel that drops (and counts as ``out-of-range`` skipped
    frames) every tick outside ``engine.limits``; a source that checks its own ticks as it reads
    them (replay) sets ``checks_ticks`` and gets the plain channel.
    """

    name: ClassVar[str]
    enabled_by_default: ClassVar[bool] = False
    options: ClassVar[Mapping[str, Any]] = {}
    provides: ClassVar[tuple[str, ...]] = ()
    checks_ticks: ClassVar[bool] = False

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: Mapping[str, Any] = {**self.options, **dict(config or {})}

    @classmethod
    def config_section(cls) -> dict[str, Any]:
        """The keys of ``[feeds.<name>]`` with their defaults, for the configuration schema."""
        return {"enabled": cls.enabled_by_default, **cls.options}

    @abstractmethod
    async def run(
        self,
        ticks: trio.MemorySendChannel[Tick],
        demand: DemandView,
        state: FeedState,
        metrics: Metrics,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Emit ticks into ``ticks`` until cancelled; call ``task_status.started()`` when ready.

        ``demand`` (:class:`~engine.book.demand.DemandView`) offers ``symbols(exchange)``,
        ``version(exchange)`` and ``async wait_changed(exchange, seen)`` for sources that can
        subscribe selectively. Keep ``state`` current (``mark_connected``, ``symbols``,
        ``last_frame_ns``) and count skipped input in ``metrics.frames_skipped``. The caller
        closes ``ticks`` when ``run`` returns or raises. Cancellation is the only way a healthy
        source stops.
        """
