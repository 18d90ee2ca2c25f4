"""What a notification sink plugin provides: a channel name, its options, and ``deliver``.

A fire is committed with one outbox row per enabled sink (``engine/store``: the row's ``channel``
is the sink's ``name``, its ``payload`` the alert and the price that fired it, its ``id`` stable
across retries). A sink turns one such row into one notification: an email, a console line, a
webhook POST. ``deliver`` returning means delivered; raising :class:`DeliveryFailed` means "try
again later". Retries, backoff and marking rows delivered belong to the engine, not the sink, so
a sink is a small class that is easy to test against a real server.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from engine.errors import DeliveryFailed
from engine.model import OutboxRow

__all__ = ["DeliveryFailed", "Sink"]  # DeliveryFailed lives in engine.errors, with the others


class Sink(ABC):
    """Base class of notification sinks; ``name`` is also the outbox channel it delivers.

    ``options`` are the keys of its ``[sinks.<name>]`` table beyond ``enabled``, with defaults.
    """

    name: ClassVar[str]
    enabled_by_default: ClassVar[bool] = False
    options: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: Mapping[str, Any] = {**self.options, **dict(config or {})}

    @classmethod
    def config_section(cls) -> dict[str, Any]:
        """The keys of ``[sinks.<name>]`` with their defaults, for the configuration schema."""
        return {"enabled": cls.enabled_by_default, **cls.options}

    @abstractmethod
    async def deliver(self, row: OutboxRow) -> None:
        """Deliver one notification. Raise :class:`DeliveryFailed` to have it retried later.

        Use ``row.id`` as the notification's stable id (e.g. the email ``Message-ID``), so a
        receiver can drop the duplicate of an at-least-once retry. Cancellable.
        """
