"""Every exception triggerbook raises on purpose, in one tree.

    TriggerbookError                  base of all of ours
    +-- ConfigError                   the configuration file or environment is invalid (at start)
    +-- PluginError                   a plugin is broken: bad hook, duplicate name, unknown exchange
    +-- BookError                     the trigger book was asked something impossible
    |   +-- DuplicateTrigger          add() of an id the book already holds
    |   +-- PriceOutOfRange           a threshold the book cannot hold exactly (precision, sign)
    +-- StoreError                    the database failed us
    |   +-- StoreUnavailable          cannot connect, or the server went away (retryable)
    |   +-- MigrationError            a schema migration failed; the engine does not start
    |   +-- Conflict                  a unique value is taken (e.g. a username on register)
    |   +-- StoreRefused              the database refused a value (a data or constraint error)
    +-- FeedError                     an exchange connection problem (the feed runner retries)
    |   +-- FeedClosed                the server closed the connection or the handshake failed
    |   +-- FeedStale                 no frame within the staleness limit while subscribed
    |   +-- BadFrame                  one frame could not be parsed; counted, logged and skipped
    |   +-- SubscriptionRejected      the exchange answered a subscribe with an error
    +-- ApiError                      a request the web layer rejects (see web/problems.py)
        +-- ValidationFailed          a field is missing or invalid (422, names the field)
        +-- NotFound                  no such resource, or not yours (404)
        +-- Unauthorized              missing, invalid or expired credentials (401)
        +-- RateLimited               too many attempts (429, carries retry_after)
        +-- MalformedRequest          a body that is not one JSON object, or a bad header (400)
        +-- PayloadTooLarge           a request body over the cap (413)
        +-- UnsupportedMediaType      a body that is not application/json (415)
        +-- Forbidden                 authenticated but not allowed: non-staff listing users (403)
        +-- LimitReached              a per-user limit (live alerts, symbols) is reached (409)

Library errors are re-raised as ours at the edge (``raise FeedClosed(...) from None``), so callers
catch a named set and let everything else propagate.
"""

from __future__ import annotations


class TriggerbookError(Exception):
    """Base class of every exception triggerbook raises on purpose."""


class ConfigError(TriggerbookError):
    """Raised at start when the configuration file or an environment override is invalid.

    The message names the key and the file (or the environment variable).
    """


class PluginError(TriggerbookError):
    """Raised at start when a plugin is broken: an unknown hook, a duplicate exchange name, or a
    feed enabled in the configuration that no plugin provides."""


class BookError(TriggerbookError):
    """Base class of the trigger book's errors; the book is unchanged when one is raised."""


class DuplicateTrigger(BookError):
    """Raised by ``TriggerBook.add`` for an id the book already holds."""


class PriceOutOfRange(BookError):
    """Raised when a threshold cannot be held exactly: not finite, not > 0, or finer than the
    book's precision."""


class StoreError(TriggerbookError):
    """Base class of the store's errors."""


class StoreUnavailable(StoreError):
    """Raised when the database cannot be reached or went away; callers retry with backoff."""


class MigrationError(StoreError):
    """Raised at start when a schema migration fails; the transaction is rolled back."""


class Conflict(StoreError):
    """Raised when a unique value is already taken (a username on register)."""


class StoreRefused(StoreError):
    """Raised when the database refuses the values of a call (a data error such as a numeric
    or time overflow, or a constraint violation): retrying the same values fails again, so
    callers set them aside (``engine/quarantine.py``) or answer 422, never retry."""


class FeedError(TriggerbookError):
    """Base class of feed errors; the feed runner reconnects on the connection-level ones."""


class FeedClosed(FeedError):
    """Raised when an exchange closes the connection or the handshake fails."""


class FeedStale(FeedError):
    """Raised when no frame arrived within the staleness limit while subscribed."""


class BadFrame(FeedError):
    """Raised by an exchange's ``parse`` for a frame it cannot turn into ticks.

    ``kind`` groups frames for counting and log-once (``"not-json"``, ``"unknown-event"``,
    ``"bad-price"``); ``sample`` is a short excerpt of the frame.
    """

    def __init__(self, kind: str, sample: str | bytes = "") -> None:
        text = sample.decode("utf-8", "replace") if isinstance(sample, bytes) else sample
        self.kind = kind
        self.sample = text[:200]
        super().__init__(f"{kind}: {self.sample}")


class SubscriptionRejected(FeedError):
    """Raised by an exchange's ``parse`` when the exchange answers a (un)subscribe with an error.

    ``symbols`` are the symbols concerned when the reply says so (may be empty), ``reason`` the
    exchange's words.
    """

    def __init__(self, reason: str, symbols: tuple[str, ...] = ()) -> None:
        self.reason = reason
        self.symbols = symbols
        super().__init__(f"subscription rejected: {reason} {list(symbols) if symbols else ''}")


class ApiError(TriggerbookError):
    """Base class of the errors the web layer turns into RFC 9457 problem responses."""


class ValidationFailed(ApiError):
    """Raised for an invalid request body or parameter; ``field`` names the offending one."""

    def __init__(self, detail: str, field: str | None = None) -> None:
        self.detail = detail
        self.field = field
        super().__init__(detail)


class NotFound(ApiError):
    """Raised when a resource does not exist or belongs to someone else (never a 403)."""


class Unauthorized(ApiError):
    """Raised for missing, malformed, tampered, expired or wrong-type credentials."""


class RateLimited(ApiError):
    """Raised when a client exceeds an attempt limit; ``retry_after`` is in whole seconds."""

    def __init__(self, detail: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(detail)


class MalformedRequest(ApiError):
    """Raised when a body is not valid JSON, is not one JSON object, or repeats a key."""


class PayloadTooLarge(ApiError):
    """Raised when a request body exceeds the web layer's size cap; nothing of it is parsed."""


class UnsupportedMediaType(ApiError):
    """Raised when a request with a body does not declare ``Content-Type: application/json``."""


class Forbidden(ApiError):
    """Raised when an authenticated user may not use a route at all (not for another user's
    objects: those are :class:`NotFound`, so their existence never leaks)."""


class LimitReached(ApiError):
    """Raised when a create would take a user past a configured limit (live alerts, distinct
    symbols); ``field`` names the request field concerned."""

    def __init__(self, detail: str, field: str | None = None) -> None:
        self.detail = detail
        self.field = field
        super().__init__(detail)
