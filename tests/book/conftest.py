"""Shared by the book actor tests: ``run_book`` wired to real trio channels."""

from __future__ import annotations

from collections.abc import Iterable

import trio

from engine.book.actor import Demand, LastPrices, run_book
from engine.book.book import TriggerBook
from engine.metrics import Metrics
from engine.model import BookCommand, Fire, Tick, Trigger
from engine.quarantine import Quarantine


class Harness:
    """The book actor's inputs and outputs; buffer sizes chosen per test."""

    def __init__(
        self,
        triggers: Iterable[Trigger] = (),
        *,
        tick_buffer: int = 16,
        command_buffer: int = 16,
        fire_buffer: int = 16,
    ) -> None:
        self.book = TriggerBook()
        self.book.bulk_load(triggers)
        self.ticks_in, self.ticks_out = trio.open_memory_channel[Tick](tick_buffer)
        self.commands_in, self.commands_out = trio.open_memory_channel[BookCommand](command_buffer)
        self.fires_in, self.fires_out = trio.open_memory_channel[Fire](fire_buffer)
        self.prices = LastPrices()
        self.demand = Demand()
        self.metrics = Metrics()
        self.quarantine = Quarantine(self.metrics)

    async def start(self, nursery: trio.Nursery) -> None:
        await nursery.start(
            run_book,
            self.book,
            self.ticks_out,
            self.commands_out,
            self.fires_in,
            self.prices,
            self.demand,
            self.metrics,
            self.quarantine,
        )

    async def close_inputs(self) -> None:
        await self.ticks_in.aclose()
        await self.commands_in.aclose()

    def seen(self, exchange: str = "binance") -> float:
        """Ticks the actor has applied for ``exchange``."""
        return self.metrics.ticks.get(exchange=exchange)
