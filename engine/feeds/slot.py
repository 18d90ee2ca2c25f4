"""A slot: up to ``max_streams_per_connection`` symbols kept subscribed over one connection.

The slot runs one :class:`~engine.feeds.session.Session` at a time (two during a handover) and
opens the next one when a session fails, with the backoff and accounting of the
:class:`ReconnectPolicy` it is given (the runner's, ``engine.feeds.runner.Reconnects``).

A documented forced disconnect (``forced_disconnect_after_s``, Binance's 24 h) is preempted:
``handover_lead_s`` before it, the slot opens the next connection, subscribes, waits for its
first frame, and only ``handover_overlap_s`` later closes the old one. During the overlap both
deliver the same trades; the slot's :class:`~engine.feeds.session.Dedupe` drops the repeats.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import trio

from engine.backoff import Backoff
from engine.feeds.session import Dedupe, Session, SkippedFrames, Wanted
from engine.feeds.status import FeedState
from engine.model import Tick
from engine.plugins.exchange import Exchange

__all__ = ["ReconnectPolicy", "Slot", "first_leaf"]


class ReconnectPolicy(Protocol):
    """What a slot does about a lost or failed connection (the runner decides)."""

    errors: tuple[type[Exception], ...]  # what ends a connection and calls for the next one

    def backoff(self) -> Backoff:
        """A fresh backoff for one slot."""
        ...

    def failed(self, exc: BaseException, delay: float) -> None:
        """Account for a failed connection before the slot waits ``delay`` seconds."""
        ...


def first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first plain exception in a (possibly nested) exception group."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class Slot:
    """One connection's worth of symbols (:attr:`wanted`, set by the feed), kept subscribed."""

    def __init__(
        self,
        exchange: Exchange,
        state: FeedState,
        ticks: trio.MemorySendChannel[Tick],
        skipped: SkippedFrames,
        policy: ReconnectPolicy,
    ) -> None:
        self.exchange = exchange
        self.state = state
        self.ticks = ticks
        self.skipped = skipped
        self.policy = policy
        self.wanted = Wanted()
        self.dedupe = Dedupe()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep a connection up until retired (``wanted.retire()``) and its session ended.

        Errors of ``policy.errors`` are reconnected after ``policy.backoff()``'s delay; anything
        else propagates (a bug must not become a silent reconnect loop).
        """
        ex = self.exchange
        policy = self.policy
        backoff = policy.backoff()
        current: Session | None = None
        async with trio.open_nursery() as nursery:
            task_status.started()
            while not self.wanted.retired:
                handover = current is not None and not current.ended.is_set()
                if handover:
                    self.dedupe.begin()
                error: BaseException | None = None
                try:
                    new: Session = await nursery.start(self._connection)
                except* policy.errors as group:
                    error = first_leaf(group)
                if error is not None:
                    if handover:
                        self.dedupe.end()
                    delay = backoff.next_delay()
                    policy.failed(error, delay)
                    await trio.sleep(delay)
                    continue
                if handover and current is not None:
                    nursery.start_soon(self._retire, current)
                current = new
                forced = ex.forced_disconnect_after_s
                deadline = new.opened_at + forced - ex.handover_lead_s if forced else math.inf
                with trio.move_on_at(deadline):
                    await new.ended.wait()
                if not new.ended.is_set():
                    continue  # time to hand over: the next iteration opens the next connection
                current = None
                backoff.succeeded(trio.current_time() - new.opened_at)
                if new.error is not None:
                    delay = backoff.next_delay()
                    policy.failed(new.error, delay)
                    await trio.sleep(delay)

    async def _retire(self, old: Session) -> None:
        """Close ``old`` once the overlap has passed (the new session is live)."""
        await trio.sleep(self.exchange.handover_overlap_s)
        old.scope.cancel()
        await old.ended.wait()
        self.dedupe.end()

    async def _connection(self, *, task_status: trio.TaskStatus[Session]) -> None:
        """Run one session. Errors before it started propagate to :meth:`run`'s loop (through
        ``nursery.start``); those of ``policy.errors`` after it are its outcome
        (``session.error``), read by :meth:`run` once ``session.ended`` is set."""
        session = Session(
            self.exchange, self.state, self.ticks, self.skipped, self.dedupe, self.wanted
        )
        try:
            await session.run(task_status=task_status)
        except* self.policy.errors as group:
            if not session.started:
                raise
            session.error = first_leaf(group)
        finally:
            session.ended.set()
