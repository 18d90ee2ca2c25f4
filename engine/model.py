"""The values that travel between actors: ticks, triggers, fires, book commands, stored rows.

They are msgspec Structs: immutable, typed, and cheap to create (about 0.2 us, a third of a
frozen dataclass), which matters on the hot path frame -> tick -> book -> fire. ``gc=False``
where a value holds no containers keeps a million triggers out of the cyclic collector.

Prices are ``Decimal`` from the wire to the database; no float ever reaches a comparison.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import msgspec


class Direction(StrEnum):
    """Which crossing fires a trigger."""

    ABOVE = "above"  # fires on the first tick with price >= target
    BELOW = "below"  # fires on the first tick with price <= target


class AlertStatus(StrEnum):
    """An alert's life: ``created`` -> ``triggered`` | ``deleted``."""

    CREATED = "created"
    TRIGGERED = "triggered"
    DELETED = "deleted"


class Tick(msgspec.Struct, frozen=True, gc=False):
    """One price observation from a feed.

    ``symbol`` is the exchange's normalised symbol (``BTCUSDT`` on Binance, ``BTC-USD`` on
    Coinbase). ``exchange_time_ms`` is the exchange's event time (0 when it sends none);
    ``received_ns`` is ``time.monotonic_ns()`` when the frame arrived, for tick-to-fire latency.
    """

    exchange: str
    symbol: str
    price: Decimal
    exchange_time_ms: int = 0
    received_ns: int = 0


class Trigger(msgspec.Struct, frozen=True, gc=False):
    """What the book needs of an alert: the id, where it listens, and when it fires."""

    id: int
    exchange: str
    symbol: str
    direction: Direction
    target: Decimal


class Fire(msgspec.Struct, frozen=True):
    """Every trigger one tick fired, in the book's order (threshold, then id).

    ``fired_at_ms`` is the wall clock (epoch milliseconds) when the book fired them: what the
    alert records as ``triggered_at``. The tick's own ``exchange_time_ms`` is the exchange's
    time, which a replay of old ticks puts years back; it is kept apart (``tick_time``).
    0 means "not stamped" (the database's commit time is used).
    """

    tick: Tick
    triggers: tuple[Trigger, ...]
    fired_ns: int = 0  # time.monotonic_ns() when the book fired them, for latency
    fired_at_ms: int = 0  # time.time_ns() // 1_000_000 when the book fired them


# --- commands to the book actor ---------------------------------------------------------------


class AddTrigger(msgspec.Struct, frozen=True, gc=False):
    """Put a committed alert into the book."""

    trigger: Trigger


class RemoveTrigger(msgspec.Struct, frozen=True, gc=False):
    """Take an alert out of the book (deleted); a no-op if it already fired."""

    trigger_id: int


BookCommand = AddTrigger | RemoveTrigger


# --- rows of the store ------------------------------------------------------------------------


class User(msgspec.Struct, frozen=True):
    """An account. ``password_hash`` is bcrypt's output; it never leaves the server."""

    id: int
    username: str
    email: str
    password_hash: str
    is_staff: bool
    created_at: datetime


class Alert(msgspec.Struct, frozen=True):
    """An alert row as the API shows it to its owner."""

    id: int
    owner_id: int
    exchange: str
    symbol: str
    target_price: Decimal
    direction: Direction
    status: AlertStatus
    name: str
    created_at: datetime
    triggered_at: datetime | None = None
    triggered_price: Decimal | None = None
    deleted_at: datetime | None = None
    tick_time: datetime | None = None  # the exchange's time of the tick that fired it, if sent
    # The sinks it notifies (``POST /api/alerts {channels}``); None: the defaults at fire time.
    channels: tuple[str, ...] | None = None

    def trigger(self) -> Trigger:
        """The book's view of this alert."""
        return Trigger(self.id, self.exchange, self.symbol, self.direction, self.target_price)


class Destination(msgspec.Struct, frozen=True):
    """Where a user wants notifications of one kind to go, beside their account's own address:
    a webhook URL, an extra (confirmed) email address, a chat-service URL.

    ``kind`` is the name of the sink that delivers it; ``secret`` is the webhook signing secret
    (``whsec_...``), None for kinds that sign nothing. ``target`` may hold a secret of its own (a
    chat-service URL): show it only through the sink's ``mask_target``.
    """

    id: int
    owner_id: int
    kind: str
    target: str
    name: str | None = None
    secret: str | None = None


class Notification(msgspec.Struct, frozen=True):
    """One message through one channel, as a sink delivers it.

    ``event`` says what happened: ``fire`` (an alert fired), ``test`` (``POST
    /api/destinations/{id}/test``: the same fields as a fire, marked as a test) or ``confirm``
    (an email destination's confirmation code). ``data`` holds, for ``fire`` and ``test``, the
    alert and the tick that fired it as strings ready for a message: ``alert_id``, ``name``,
    ``username``, ``email`` (the account's address), ``exchange``, ``symbol``, ``direction``,
    ``target_price`` and ``triggered_price`` (exact decimal strings), ``created_at`` and
    ``triggered_at`` (ISO 8601); for ``confirm``: ``username``, ``code`` and ``address``.

    ``id`` is the outbox row's id: the same on every retry, so a receiver can drop duplicates
    (the email ``Message-ID``, the webhook ``webhook-id``); ``key`` is that id as a string,
    prefixed for the events that have no outbox row (``test-...``). ``destination`` is None for a
    channel that goes to the account itself (the console line, a mail to the account's address).
    ``attempts`` counts the tries made before this one.
    """

    id: int
    alert_id: int
    channel: str
    data: dict[str, object]
    destination: Destination | None = None
    attempts: int = 0
    event: str = "fire"
    key: str = ""

    def message_id(self) -> str:
        """The notification's stable id as a receiver sees it: ``key``, else the outbox id."""
        return self.key or str(self.id)


class FireChannels(msgspec.Struct, frozen=True):
    """Which outbox rows a fire queues, from the enabled sinks (``engine/sinks``).

    ``account``: the channels that reach the account itself (console, a mail to the account's
    address), one row each, in this order; those also in ``confirmed_account`` only once the
    account's address is confirmed. ``destinations``: the sinks users aim with destinations, one
    row per live, confirmed destination of the owner whose kind is among them. An alert's own
    ``channels`` narrows both.
    """

    account: tuple[str, ...] = ()
    confirmed_account: tuple[str, ...] = ()
    destinations: tuple[str, ...] = ()


class OutboxRow(msgspec.Struct, frozen=True):
    """One notification to deliver through one sink channel (``console``, ``email``, ...).

    ``id`` is stable across retries, so a receiver can drop duplicates (e.g. the email
    ``Message-ID``).
    """

    id: int
    alert_id: int
    channel: str
    payload: dict[str, object]
    attempts: int = 0
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    last_error: str | None = None
