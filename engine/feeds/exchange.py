"""What a WebSocket exchange plugin describes: pure data and pure functions, no I/O.

An exchange is one small class: its name and URL as class attributes, the frames that subscribe
and unsubscribe a set of symbols, and ``parse``, which turns one raw frame into ticks. The shared
feed runner (``engine/feeds/runner.py``) does everything with a socket in it: connect, subscribe,
heartbeat, staleness, backoff, the forced-disconnect handover. So an exchange is testable on
recorded frames alone.

Example (the whole Binance-like contract)::

    class Example(Exchange):
        name = "example"
        url = "wss://stream.example.com/ws"

        def subscribe_frames(self, symbols):
            return [json.dumps({"op": "subscribe", "args": list(symbols)})]

        def unsubscribe_frames(self, symbols):
            return [json.dumps({"op": "unsubscribe", "args": list(symbols)})]

        def parse(self, frame, received_ns):
            msg = json.loads(frame)
            return [Tick(self.name, msg["s"], Decimal(msg["p"]), msg["T"], received_ns)]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from engine.errors import ConfigError
from engine.feeds.connection import split_ws_url
from engine.model import Tick


class Exchange(ABC):
    """Base class of WebSocket exchanges. Subclasses set the class attributes and override
    ``subscribe_frames``, ``unsubscribe_frames`` and ``parse``.

    ``options`` are the keys of the exchange's ``[feeds.<name>]`` table beyond ``enabled`` and
    ``url``, with their defaults; the configuration is validated against them.
    """

    name: ClassVar[str]
    url: ClassVar[str]
    enabled_by_default: ClassVar[bool] = False
    options: ClassVar[Mapping[str, Any]] = {}

    max_streams_per_connection: ClassVar[int] = 1024
    max_messages_per_second: ClassVar[float] = 5.0
    symbols_per_message: ClassVar[int] = 200
    stale_after_s: ClassVar[float] = 60.0
    # The exchange drops every connection after this long; the runner opens the next one first.
    forced_disconnect_after_s: ClassVar[float | None] = None
    # Send ``heartbeat_frame()`` this often when the exchange wants application-level pings.
    heartbeat_interval_s: ClassVar[float | None] = None
    # The forced-disconnect handover: open the next connection this long before the deadline,
    # and keep both for ``handover_overlap_s`` after the new one is live (ticks deduplicated).
    handover_lead_s: ClassVar[float] = 60.0
    handover_overlap_s: ClassVar[float] = 1.0
    # Reconnect backoff: full jitter, uniform(0, min(cap, base * 2**attempt)); the attempt count
    # resets once a connection stayed up for ``healthy_after_s``.
    backoff_base_s: ClassVar[float] = 0.5
    backoff_cap_s: ClassVar[float] = 30.0
    healthy_after_s: ClassVar[float] = 30.0
    # How long to wait for the WebSocket handshake before counting it as a failed attempt.
    connect_timeout_s: ClassVar[float] = 10.0

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        table = dict(config or {})
        self.config: Mapping[str, Any] = {**self.options, **table}
        self.base_url: str = table.get("url") or self.url
        try:
            split_ws_url(self.base_url)
        except ValueError as exc:
            raise ConfigError(f"[feeds.{self.name}] url: {exc}") from None
        # Runner settings an operator may override per feed in ``[feeds.<name>]``.
        if "stale_after_s" in table:
            self.stale_after_s = float(table["stale_after_s"])

    @classmethod
    def config_section(cls) -> dict[str, Any]:
        """The keys of ``[feeds.<name>]`` with their defaults, for the configuration schema."""
        return {
            "enabled": cls.enabled_by_default,
            "url": cls.url,
            "stale_after_s": float(cls.stale_after_s),
            **cls.options,
        }

    def normalise_symbol(self, symbol: str) -> str:
        """The exchange's canonical spelling of a user-given symbol (default: upper case)."""
        return symbol.strip().upper()

    def connect_url(self) -> str:
        """The URL to open for one connection (default: the configured base URL)."""
        return self.base_url

    @abstractmethod
    def subscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """Text frames that subscribe ``symbols`` (at most ``symbols_per_message`` of them)."""

    @abstractmethod
    def unsubscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """Text frames that unsubscribe ``symbols``."""

    def heartbeat_frame(self) -> str | None:
        """An application-level ping to send every ``heartbeat_interval_s``, if any."""
        return None

    @abstractmethod
    def parse(self, frame: str | bytes, received_ns: int) -> list[Tick]:
        """Turn one frame into ticks; control replies (acks, pongs) give ``[]``.

        Raises :class:`engine.errors.BadFrame` for a frame it cannot understand and
        :class:`engine.errors.SubscriptionRejected` for an error reply to a (un)subscribe.
        """
