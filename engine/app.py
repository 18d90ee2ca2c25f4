"""The engine: one ``trio.run``, one root nursery, actors that talk only through memory channels.

Read ``run_engine`` top to bottom: it opens the store, records the fires a crash left in the
fire journal (``engine/store/journal.py``), loads the book from the store, then starts the
delivery loops (one per enabled sink: undelivered notifications go out at once), the fire
recorder, the book, the symbol directory (each exchange's traded symbols), the feeds, and
last the web. Each actor is started with ``await nursery.start(...)``, so the next one begins
only once the previous one is ready, and an error in any of them cancels all of them. The parts
are built once, into one :class:`~engine.parts.Parts` that the web is handed.

    feeds --ticks--> book --fires--> fire recorder (store, outbox) --wake--> delivery --> sinks
      ^                ^   |
      |  demand        |   +-- last prices --> web
      +----------------+-- commands <-- web (writes through the store first)

Shutdown is cancellation, in an order (SIGINT or SIGTERM cancels the engine's scope):

1. The web stops taking creates: a new one gets 503 (``ShuttingDown``, ``Retry-After``) and is
   not written (``CreateBatcher.stop_taking``).
2. The web drains: hypercorn stops accepting, requests in flight get ``WebSettings.grace_s``;
   the creates already queued are committed, sent to the book and answered 201.
3. Only then is the back end cancelled: the book, the feeds, the symbol directory, the fire
   recorder (which shields its final flush, bounded by its ``grace_s``) and the delivery loops.
4. The store closes (an embedded server is stopped).

The order is two cancel scopes: the back end runs inside a shielded scope (``back``) that the
engine's cancellation does not reach, and the web runs outside it, so the cancellation reaches
the web alone; when the web has stopped (drained, or failed) it cancels ``back``. An error in
the back end ends its nursery, whose error then cancels the web (which drains the same way).
So a create the web took is never refused because the book stopped first; should the book's
channel be closed anyway, a committed create is still answered 201 (``web/batcher.py``).
A second signal ends the process once the (bounded) drains are done.
"""

from __future__ import annotations

import gc
import logging
import signal
from dataclasses import dataclass
from functools import partial

import trio
import trio_asyncio

from engine.book.actor import Demand, LastPrices, run_book
from engine.book.book import TriggerBook
from engine.book.history import PriceHistory
from engine.config import Config
from engine.events import FirePublisher
from engine.feeds.runner import run_feeds
from engine.feeds.status import FeedStates
from engine.feeds.symbols import SymbolDirectory, run_symbol_directory
from engine.metrics import Metrics
from engine.model import BookCommand, Fire, Tick
from engine.parts import Parts
from engine.plugins.registry import FeedRegistry
from engine.quarantine import Quarantine
from engine.sinks.delivery import Delivery
from engine.store import FireJournal, Store, open_store, replay, run_fire_recorder
from web.server import run_web  # the root starts the web (the engine-below-web contract allows it)

log = logging.getLogger(__name__)

TICK_BUFFER = 4096  # a burst of frames; feeds wait (back-pressure) beyond it
COMMAND_BUFFER = 1024
FIRE_BUFFER = 4096


@dataclass(frozen=True, slots=True)
class Engine:
    """What ``run_engine`` reports once everything runs (to the tests and whoever started it).

    The parts and the port stay two things because the port is known only once the web has
    started, after the parts were built and handed to it: the web never sees a port it would
    not have yet.
    """

    parts: Parts
    http_port: int


# The cyclic collector's thresholds once the engine runs (Python's are 700, 10, 10). Nearly all
# the engine's garbage is freed by reference counting, so a collection mostly walks live objects
# for nothing: under API load (benchmarks/api_load.py, 20,000 creates and 40,000 lists) the
# default thresholds ran 29 gen-2 passes of up to 31 ms each and 1.8 s of collection in all;
# these ran 2 passes (20 ms). Cycles (tracebacks of cancelled tasks) are still collected.
GC_THRESHOLDS = (50_000, 20, 100)


def settle_heap() -> None:
    """Freeze what exists now (it lives as long as the engine, so a million loaded triggers never
    make a collection stall the hot path) and raise the collector's thresholds."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def run_engine(
    config: Config,
    feeds: FeedRegistry,
    *,
    task_status: trio.TaskStatus[Engine] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run every actor until cancelled; ``task_status.started`` gets the :class:`Engine`.

    Raises whatever an actor raises that it cannot handle itself (a migration that fails, a
    port that is taken); the other actors are cancelled first.
    """
    metrics = Metrics()
    quarantine = Quarantine(metrics)
    ticks_send, ticks_recv = trio.open_memory_channel[Tick](TICK_BUFFER)
    commands_send, commands_recv = trio.open_memory_channel[BookCommand](COMMAND_BUFFER)
    fires_send, fires_recv = trio.open_memory_channel[Fire](FIRE_BUFFER)

    journal = FireJournal.for_database(config.database)
    async with trio_asyncio.open_loop(), open_store(config.database) as store:
        parts = assemble(config, store, TriggerBook(), commands_send, feeds, metrics, quarantine)
        # Fires seen before a crash while the database was away are recorded first, so their
        # alerts are not loaded as live (engine/store/journal.py).
        await replay(journal, store, parts.delivery.fire_channels())
        book = await load_book(store, quarantine, parts.book)
        settle_heap()

        # The back end runs in ``back``, shielded: the engine's cancellation lands on the web
        # alone (in ``front``), which cancels ``back`` once it has stopped (module docstring).
        back = trio.CancelScope(shield=True)
        async with trio.open_nursery() as front:
            with back:
                async with trio.open_nursery() as nursery:
                    await nursery.start(parts.delivery.run)
                    await nursery.start(
                        partial(
                            run_fire_recorder,
                            committed=parts.delivery.wake,
                            publisher=parts.fires,
                            journal=journal,
                        ),
                        store,
                        fires_recv,
                        parts.delivery.fire_channels(),
                        metrics,
                        quarantine,
                    )
                    await nursery.start(
                        run_book,
                        book,
                        ticks_recv,
                        commands_recv,
                        fires_send,
                        parts.prices,
                        parts.demand,
                        metrics,
                        quarantine,
                    )
                    # The stored symbol lists are loaded before it reports started (no network
                    # wait); the feeds subscribe only what the lists allow, the web refuses
                    # unlisted symbols.
                    await nursery.start(run_symbol_directory, parts.symbols, store)
                    await nursery.start(
                        partial(run_feeds, directory=parts.symbols),
                        config,
                        feeds,
                        ticks_send,
                        parts.demand,
                        parts.feed_states,
                        metrics,
                    )
                    http_port = await front.start(run_front, parts, back)
                    log.info("triggerbook ready on http://%s:%d", config.http.host, http_port)
                    task_status.started(Engine(parts, http_port))


async def run_front(
    parts: Parts, back: trio.CancelScope, *, task_status: trio.TaskStatus[int]
) -> None:
    """Serve the web, then cancel ``back``: however the web ends (its drain done after the
    engine was cancelled, or an error), the back end stops after it, never before. Until it
    has started it runs in its starter's scope (``back``, shielded), so a signal during the
    start does not cut the start short; it then drains at once."""
    try:
        await run_web(parts, task_status=task_status)
    finally:
        back.cancel()


def assemble(
    config: Config,
    store: Store,
    book: TriggerBook,
    commands: trio.MemorySendChannel[BookCommand],
    feeds: FeedRegistry,
    metrics: Metrics,
    quarantine: Quarantine,
) -> Parts:
    """The bag of parts around a loaded ``book``: fresh last prices, demand and feed states, the
    symbol directory of the enabled exchanges and the delivery loops of the enabled sinks. What
    :func:`run_engine` builds; tests and benchmarks build theirs with it too."""
    prices = LastPrices(PriceHistory())
    return Parts(
        config=config,
        store=store,
        book=book,
        commands=commands,
        prices=prices,
        history=prices.history,
        demand=Demand(),
        feeds=feeds,
        feed_states=FeedStates(),
        symbols=SymbolDirectory.for_config(feeds, config, metrics),
        delivery=Delivery(
            {name: feeds.sink(name, config.sinks[name]) for name in config.enabled_sinks()},
            store.outbox,
            metrics,
            retry_base_s=config.delivery.retry_base_s,
            retry_cap_s=config.delivery.retry_cap_s,
        ),
        metrics=metrics,
        quarantine=quarantine,
        fires=FirePublisher(),
    )


async def load_book(
    store: Store, quarantine: Quarantine, book: TriggerBook | None = None
) -> TriggerBook:
    """The book of every live alert, for the start (loaded into ``book`` when given). A row
    that cannot be read as a trigger, or whose trigger the book cannot hold (stored before the
    database had its constraints), never stops the start: it is quarantined (``"load"``) under
    its alert id and stays ``created``, so its owner sees why it does not fire and can delete
    it."""
    refused_rows: list[tuple[int | None, str]] = []
    book = TriggerBook() if book is None else book
    refused = book.bulk_load(await store.load_live_triggers(refused_rows))
    for alert_id, reason in refused_rows:
        quarantine.add("load", reason, alert_id=alert_id)
    for trigger, reason in refused:
        quarantine.add(
            "load",
            f"the book cannot hold this alert: {reason}",
            alert_id=trigger.id,
            sample=f"{trigger.exchange} {trigger.symbol} {trigger.direction}",
        )
    log.info(
        "book loaded: %d live triggers, %d refused", len(book), len(refused_rows) + len(refused)
    )
    return book


async def serve(config: Config, feeds: FeedRegistry) -> None:
    """Run the engine until SIGINT or SIGTERM, then shut it down in order (module docstring).

    The first signal cancels the engine: the web stops taking creates and drains (at most
    ``WebSettings.grace_s`` + 1 s), then the back end stops (the fire recorder's final flush at
    most its ``grace_s``). A second one raises ``KeyboardInterrupt``, which ends the process as
    soon as those bounded, shielded drains are over.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            engine_scope = trio.CancelScope()

            async def engine() -> None:
                with engine_scope:
                    await run_engine(config, feeds)
                nursery.cancel_scope.cancel()  # the engine is done: stop waiting for signals

            nursery.start_soon(engine)
            async for signum in signals:
                if engine_scope.cancel_called:
                    log.warning("%s again: exiting now", signal.Signals(signum).name)
                    raise KeyboardInterrupt
                log.info("%s: shutting down", signal.Signals(signum).name)
                engine_scope.cancel()
