"""Every exception triggerbook raises on purpose, in one tree; each class says where it is raised.

    TriggerbookError                  base of all of ours
    +-- ConfigError                   a setting is invalid: file, environment, a [feeds.X] table
    +-- PluginError                   a plugin is broken or missing (at start)
    +-- BookError                     the book cannot hold it: id beyond 64 bits, no symbol room
    |   +-- DuplicateTrigger          an id already in the book, or twice in one bulk load
    |   +-- PriceOutOfRange           a target the book cannot hold exactly; a tick price not finite
    +-- StoreError                    the database failed us
    |   +-- StoreUnavailable          unreachable, gone, not started, a URL that cannot work (503)
    |   |   +-- ShuttingDown          a create refused (not written) as the server stops (503)
    |   +-- MigrationError            a migration failed or changed; the engine does not start
    |   +-- Conflict                  a unique value is taken: a username on register (409)
    |   +-- StoreRefused              the database refused a value (data or constraint error)
    +-- FeedError                     a feed cannot go on (itself: the book's tick channel closed)
    |   +-- FeedClosed                the exchange announced it is going away: reconnect
    |   +-- FeedStale                 no frame within the staleness limit while subscribed
    |   +-- BadFrame                  a frame or replay line that does not parse; counted, skipped
    |   +-- SubscriptionRejected      the exchange answered a (un)subscribe with an error
    +-- DeliveryError                 a sink did not deliver one notification (engine.plugins.Sink)
    |   +-- DeliveryFailed            retry later with backoff (mail 4xx, HTTP 5xx, a timeout)
    |   |   +-- SinkUnavailable       the channel is down (mail login refused): retried, on /readyz
    |   +-- DeliveryRefused           never: the notification is dead, its reason kept (550, 404)
    |       +-- DestinationGone       never again: the destination is disabled too (webhook 410)
    +-- ApiError                      a request the web layer rejects (see web/problems.py)
        +-- ValidationFailed          a field is missing or invalid (422, names the field)
        +-- NotFound                  no such resource, or not yours (404)
        +-- Unauthorized              missing, invalid or expired credentials; a bad login (401)
        +-- RateLimited               too many logins or registrations (429, carries retry_after)
        +-- Overloaded                the password hashing queue is full (503, carries retry_after)
        +-- MalformedRequest          a body that is empty, not JSON or not one JSON object (400)
        +-- PayloadTooLarge           a request body over the cap (413)
        +-- UnsupportedMediaType      a body that is not application/json (415)
        +-- Forbidden                 authenticated but not allowed: non-staff listing users (403)
        +-- LimitReached              a per-user limit (live alerts, symbols) is reached (409)

Library errors are re-raised as ours at the edge (the store bridge: ``raise
StoreUnavailable(...) from None``), so callers catch a named set and let everything else
propagate. One edge keeps the library's own: the feed runner catches trio-websocket's
``HandshakeError`` and ``ConnectionClosed``, ``OSError`` and ``trio.TooSlowError`` as they are,
beside :class:`FeedClosed` and :class:`FeedStale` (``engine.feeds.runner.RECONNECT_ERRORS``).
"""

from __future__ import annotations


class TriggerbookError(Exception):
    """Base class of every exception triggerbook raises on purpose."""


class ConfigError(TriggerbookError):
    """Raised at start when a setting is invalid: the configuration file (unreadable, not TOML,
    an unknown section or key, a value of the wrong type), an environment override, or a value
    that an exchange or feed source refuses when built from its ``[feeds.<name>]`` table
    (``engine.feeds.parsing.choose_option``, a replay file that does not exist).

    The message names the key, and the file or the environment variable where it knows them.
    """


class PluginError(TriggerbookError):
    """Raised at start (``engine.plugins.registry``, the feed runner) when a plugin is broken or
    missing: a hook that does not match its spec, a plugin that fails to import or is
    registered twice, a hook returning something that is not an Exchange, FeedSource or Sink
    subclass, two plugins providing one name, or a feed enabled in the configuration (or asked
    for by name) that no plugin provides."""


class BookError(TriggerbookError):
    """Base class of the trigger book's errors; the book is unchanged when one is raised.

    Raised itself for a trigger id outside the signed 64-bit range an entry holds, a direction
    that is neither above nor below, or a new symbol when no side number is left.
    ``TriggerBook.bulk_load`` returns the triggers it cannot hold for a reason of their own (a
    target, a direction) instead of raising, and raises only for an id or for room.
    """


class DuplicateTrigger(BookError):
    """Raised by ``TriggerBook.add`` for an id the book already holds, and by
    ``TriggerBook.bulk_load`` for one it holds or one given twice (ids are primary keys: a
    caller's bug)."""


class PriceOutOfRange(BookError):
    """Raised when a target cannot be held exactly: not a finite decimal, not > 0, not below
    ``MAX_TARGET``, or finer than the book's precision; and when a tick's price is not finite
    (``TriggerBook.apply`` of a NaN)."""


class StoreError(TriggerbookError):
    """Base class of the store's errors."""


class StoreUnavailable(StoreError):
    """Raised when the database cannot be used now: a call whose server is unreachable or went
    away (the fire recorder retries it with ``engine.backoff``; the web answers 503), a start
    that found no server within ``start_timeout_s``, an embedded Postgres that did not start,
    or a request queued while the web batcher shuts down.

    Also raised at once, never retried, for a URL that cannot work (malformed, an unknown
    database or role, a wrong password); the message names the URL without its password.
    """


class ShuttingDown(StoreUnavailable):
    """Raised by the web's create batcher (``web/batcher.py``) for a create that came once the
    server had stopped taking creates (the first step of the engine's shutdown,
    ``engine/app.py``), or that was still queued when the batcher stopped: nothing of it was
    written, so the client may send it again, to this server once it is back or to another
    (503 with ``Retry-After``: ``retry_after`` whole seconds)."""

    def __init__(self, detail: str = "the server is shutting down", retry_after: int = 5) -> None:
        self.retry_after = retry_after
        super().__init__(detail)


class MigrationError(StoreError):
    """Raised at start when a schema migration fails, when a migration file is misnamed, or when
    an applied migration's file was changed since; the transaction is rolled back, so nothing
    of that start's migrations is applied."""


class Conflict(StoreError):
    """Raised by ``Store.create_user`` when the username is already taken (409 on register)."""


class StoreRefused(StoreError):
    """Raised by the store bridge when the database refuses the values of a call (a data error
    such as a numeric or time overflow, or a constraint violation; the driver's error is the
    ``__cause__``): retrying the same values fails again, so no caller retries them as they
    are. The fire recorder bisects the batch and sets refused fires aside
    (``engine/quarantine.py``); the web batcher retries a batch one item at a time so only the
    refused request fails; ``Store.create_user`` turns a unique violation into
    :class:`Conflict`. The web validates values first, so a refusal that reaches a request
    anyway is a logged 500."""


class FeedError(TriggerbookError):
    """Base class of feed errors. The feed runner reconnects on :class:`FeedClosed` and
    :class:`FeedStale`; :class:`BadFrame` and :class:`SubscriptionRejected` keep the connection.

    Raised itself by the feed runner when the book's tick channel is closed (the engine is
    stopping, or the book died): not a reconnect, it ends the feed.
    """


class FeedClosed(FeedError):
    """Raised by an exchange's ``parse`` for a notice that the server is going away (Binance's
    ``serverShutdown``); the runner closes the connection and reconnects with its backoff.

    Not raised for a connection the server closes, or a handshake that fails: those stay
    trio-websocket's ``ConnectionClosed`` and ``HandshakeError``, which the runner catches as
    they are (``engine.feeds.runner.RECONNECT_ERRORS``).
    """


class FeedStale(FeedError):
    """Raised by the feed runner when no frame arrived within the exchange's ``stale_after_s``
    while subscribed; the runner reconnects with its backoff."""


class BadFrame(FeedError):
    """Raised by an exchange's ``parse`` (and the shared helpers of ``engine.feeds.parsing``)
    for a frame it cannot turn into ticks, and by the replay source for a line it cannot read.
    The runner counts it in ``frames_skipped``, logs it once per kind and skips the frame.

    ``kind`` groups frames for counting and log-once (``"not-json"``, ``"unknown-event"``,
    ``"bad-shape"``, ``"bad-field"``, ``"bad-price"``, the replay's ``"out-of-range"``; a
    plugin may name its own); ``sample`` is a short excerpt of the frame.
    """

    def __init__(self, kind: str, sample: str | bytes = "") -> None:
        text = sample.decode("utf-8", "replace") if isinstance(sample, bytes) else sample
        self.kind = kind
        self.sample = text[:200]
        super().__init__(f"{kind}: {self.sample}")


class SubscriptionRejected(FeedError):
    """Raised by an exchange's ``parse`` when the exchange answers a (un)subscribe with an error.
    The runner records the symbols in ``FeedState.rejected`` (shown on ``/readyz``) and keeps
    the connection.

    ``symbols`` are the symbols concerned when the reply says so (may be empty), ``request_id``
    the runner's number of the request the reply answers when the exchange echoes it (see
    ``Exchange.subscribe_request``), ``reason`` the exchange's words. The runner blames the
    symbols named, else the batch of that request; a rejection naming neither keeps the feed
    unready, with the reason, until its connection is replaced (``engine.feeds.status``).
    """

    def __init__(
        self, reason: str, symbols: tuple[str, ...] = (), request_id: int | None = None
    ) -> None:
        self.reason = reason
        self.symbols = symbols
        self.request_id = request_id
        named = f" {list(symbols)}" if symbols else ""
        asked = f" (request {request_id})" if request_id is not None else ""
        super().__init__(f"subscription rejected: {reason}{named}{asked}")


class DeliveryError(TriggerbookError):
    """Base class of what a sink's ``deliver`` raises (``engine.plugins.Sink``) when one
    notification was not delivered; ``reason`` is kept on the outbox row as ``last_error``, so it
    must hold no secret (a chat-service URL, a password)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class DeliveryFailed(DeliveryError):
    """Not delivered this time (a refused connection, a timeout, a 4xx mail reply, an HTTP 5xx or
    429): the delivery loop retries it with ``engine.backoff`` until ``max_attempts``.
    ``retry_after_s`` is the receiver's own wish (HTTP ``Retry-After``), honoured when given."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(reason)


class SinkUnavailable(DeliveryFailed):
    """The whole channel is down, not this one notification (the mail server refuses our login
    or our sender): the operator's problem. Retried like :class:`DeliveryFailed`, and the delivery
    loop shows the reason on ``/readyz`` until a delivery through the channel succeeds."""


class DeliveryRefused(DeliveryError):
    """Never deliverable (a mail server's 5xx for the recipient, an HTTP 4xx other than 408, 409,
    425 and 429, an address the webhook sink may not reach): the notification is ``dead`` at
    once, with the reason kept."""


class DestinationGone(DeliveryRefused):
    """The destination itself is gone for good (a webhook's HTTP 410): the notification is
    ``dead`` and the destination is disabled, so nothing more is queued for it."""


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
    """Raised for missing, malformed, tampered, expired or wrong-type credentials, a wrong
    username or password on login, and a valid token whose user no longer exists."""


class RateLimited(ApiError):
    """Raised when a client is at its limit of login attempts (``web.auth.LoginGuard``: failed
    ones, or one already in flight for the username) or of registrations
    (``web.auth.RegistrationLimiter``); ``retry_after`` is in whole seconds."""

    def __init__(self, detail: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(detail)


class Overloaded(ApiError):
    """Raised by ``web.auth.PasswordHasher`` when its queue of hashes waiting for a thread is
    full (for a registration: its share of it), before any hashing: the server is busy, not
    the client wrong (503). ``retry_after`` is in whole seconds."""

    def __init__(self, detail: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(detail)


class MalformedRequest(ApiError):
    """Raised when a body is empty, is not valid UTF-8 JSON, nests too deeply, is not one JSON
    object, repeats a key, or holds ``NaN`` or ``Infinity``."""


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
