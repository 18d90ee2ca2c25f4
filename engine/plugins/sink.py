"""What a notification sink plugin provides: a channel name, its options, and ``deliver``.

A fire is committed with one outbox row per (channel, destination) its alert chose
(``engine/store``). The engine's delivery loop (``engine/sinks/delivery.py``) claims due rows,
turns each into a :class:`~engine.model.Notification` and hands it to the sink of its channel. A
sink turns one notification into one message: a console line, an email, a webhook POST, a chat
message. Everything else belongs to the engine, so a sink is a small class that is easy to test
against a real server:

- retries and backoff, ``max_attempts``, marking rows delivered or dead;
- bounded concurrency (``concurrency`` deliveries in flight per sink);
- a deadline per delivery (``timeout_s``, a cancel scope: ``deliver`` must be cancellable).

``deliver`` returning means delivered. Raising tells the loop what to do next:

- :class:`DeliveryFailed`: retry later (``retry_after_s`` honoured when the receiver asked);
- :class:`SinkUnavailable`: the same, and the channel is shown as down on ``/readyz``;
- :class:`DeliveryRefused`: dead at once, reason kept;
- :class:`DestinationGone`: dead, and the destination is disabled.

Anything else raised by ``deliver`` is a bug in the sink: the loop logs it with its traceback
and retries the notification like a :class:`DeliveryFailed`, so one broken plugin cannot stop
the engine or lose a notification.

A sink that users can aim (``takes_destinations``: webhook, email, chat) also checks targets at
``POST /api/destinations``: :meth:`Sink.check_target` (pure) and :meth:`Sink.vet_target` (may
resolve names), both raising ``ValueError`` with a reason the API shows as a 422. A target that
holds a secret (a chat-service URL with its token) is only ever shown through
:meth:`Sink.mask_target`, in responses and in log lines alike.

A sink that needs resources for its lifetime (a pool of SMTP connections, an HTTP client) opens
them in :meth:`Sink.open`, which the delivery loop enters once, in its own nursery, before the
first delivery. asyncio libraries (aiosmtplib) run on the engine's trio-asyncio loop, which is
open around every sink: call them through ``trio_asyncio.aio_as_trio``. A synchronous library
(Apprise) runs in ``trio.to_thread.run_sync`` under a ``trio.CapacityLimiter``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from engine.errors import DeliveryFailed, DeliveryRefused, DestinationGone, SinkUnavailable
from engine.model import Notification

__all__ = [
    "DeliveryFailed",
    "DeliveryRefused",
    "DestinationGone",
    "Sink",
    "SinkUnavailable",
]  # the errors live in engine.errors, with the others

# Keys of every ``[sinks.<name>]`` table, with the defaults a sink class may change.
COMMON_KEYS = ("enabled", "concurrency", "timeout_s", "max_attempts")


class Sink(ABC):
    """Base class of notification sinks; ``name`` is also the outbox channel it delivers and the
    ``kind`` of the destinations it takes.

    ``options`` are the keys of its ``[sinks.<name>]`` table beyond the common ones
    (``enabled``, ``concurrency``, ``timeout_s``, ``max_attempts``), with their defaults.
    """

    name: ClassVar[str]
    enabled_by_default: ClassVar[bool] = False
    options: ClassVar[Mapping[str, Any]] = {}
    # Users may add destinations of this kind (POST /api/destinations {kind: name}).
    takes_destinations: ClassVar[bool] = False
    # The channel reaches the account itself, with no destination (console; email to the
    # account's address), and is one of an alert's default channels when enabled.
    reaches_account: ClassVar[bool] = False
    # Defaults of the common keys.
    concurrency: ClassVar[int] = 8
    timeout_s: ClassVar[float] = 30.0
    max_attempts: ClassVar[int] = 12

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: Mapping[str, Any] = {**self.config_section(), **dict(config or {})}

    @classmethod
    def config_section(cls) -> dict[str, Any]:
        """The keys of ``[sinks.<name>]`` with their defaults, for the configuration schema."""
        return {
            "enabled": cls.enabled_by_default,
            "concurrency": cls.concurrency,
            "timeout_s": float(cls.timeout_s),
            "max_attempts": cls.max_attempts,
            **cls.options,
        }

    def check_target(self, target: str) -> str:
        """The destination target as stored (normalised), or ``ValueError`` with a human reason.
        Pure: no I/O. Only called for sinks that take destinations."""
        raise ValueError(f"{self.name} takes no destinations")

    async def vet_target(self, target: str) -> None:
        """Checks of a checked target that need I/O (the webhook sink resolves the host and
        refuses private addresses); ``ValueError`` with a reason. Default: none."""
        return None

    def mask_target(self, target: str) -> str:
        """``target`` as responses and log lines show it (secrets hidden). Default: as is."""
        return target

    def new_secret(self) -> str | None:
        """A fresh secret for a new destination, shown once to its owner (the webhook signing
        secret), or None for kinds that sign nothing."""
        return None

    @asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        """The sink's resources for the engine's lifetime (default: none)."""
        yield

    @abstractmethod
    async def deliver(self, note: Notification) -> None:
        """Deliver one notification, or raise one of the delivery errors (module doc).

        Use ``note.message_id()`` as the message's stable id (the email ``Message-ID``, the
        webhook ``webhook-id``), so a receiver can drop the duplicate of an at-least-once
        retry. Must be cancellable: the loop's deadline is a cancel scope.
        """
