"""The webhook sink: each notification POSTed to the destination's URL, signed the Standard
Webhooks way (https://www.standardwebhooks.com), so that any receiver library can verify it.

One request::

    POST /hooks/triggerbook HTTP/1.1
    content-type: application/json
    webhook-id: 1234                       # note.message_id(): the same on every retry
    webhook-timestamp: 1764000000          # integer seconds, when this attempt was signed
    webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=

    {"type":"alert.fired","timestamp":"2026-11-25T17:36:16.123456+00:00",
     "data":{"alert_id":"42","name":"BTC breakout","username":"ada","exchange":"binance",
             "symbol":"BTCUSDT","direction":"above","target_price":"70000",
             "triggered_price":"70000.10","created_at":"...","triggered_at":"...","email":"..."}}

The signature is ``base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}"))``, keyed by
the destination's secret (``whsec_`` + base64 of the key bytes, made by :meth:`new_secret` and
shown once to its owner). ``type`` is ``alert.fired`` for a fire and ``alert.test`` for ``POST
/api/destinations/{id}/test``; ``timestamp`` is when the alert fired.

Outcomes (the delivery loop acts on them, ``engine/plugins/sink.py``): 2xx is delivered; 410 is
:class:`DestinationGone` (the destination is disabled); 408, 409, 425, 429, 5xx, a timeout or a
network error is :class:`DeliveryFailed`, retried, with ``Retry-After`` (seconds or an HTTP date)
as ``retry_after_s``; a 3xx is a failure too, since redirects are not followed; any other 4xx and
an address the SSRF rules forbid are :class:`DeliveryRefused` (dead at once). Reasons name the host,
never the secret nor the URL's path or query.

SSRF: unless ``allow_private = true``, a target may reach only public addresses
(``engine/sinks/ssrf.py``): refused by :meth:`check_target` for an address literal or a
``localhost`` name, by :meth:`vet_target` when every address of its name is forbidden, and at each
connection by the guarded transport (``engine/sinks/guarded.py``), which resolves the name itself,
connects only to an allowed address and checks the connected peer.

Options of ``[sinks.webhook]`` besides the common keys (``timeout_s`` defaults to 10 here): only
``allow_private``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx
import msgspec
import trio

from engine.errors import DeliveryFailed, DeliveryRefused, DestinationGone
from engine.model import Notification
from engine.plugins import Sink, hookimpl
from engine.sinks.guarded import Resolver, guarded_client, resolve
from engine.sinks.ssrf import address_reason, check_url_host, literal_address

URL_MAX = 2048
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the specification asks for 24 to 64 random bytes
EVENT_TYPES: Mapping[str, str] = {"fire": "alert.fired", "test": "alert.test"}
# 4xx answers that mean "not now" rather than "never" (with 429 the receiver's rate limit).
RETRIED_4XX = frozenset({408, 409, 425, 429})
SNIPPET_BYTES = 512  # of a refusal's body, kept in the reason


class WebhookSink(Sink):
    """POSTs each notification to its destination's URL, signed with the destination's secret.

    ``resolver`` replaces DNS (tests: a name that resolves to a public address, then to
    loopback); the engine builds the sink with its config table only.
    """

    name = "webhook"
    takes_destinations: ClassVar[bool] = True
    reaches_account: ClassVar[bool] = False
    timeout_s: ClassVar[float] = 10.0
    options: ClassVar[Mapping[str, Any]] = {"allow_private": False}

    def __init__(
        self, config: Mapping[str, Any] | None = None, *, resolver: Resolver = resolve
    ) -> None:
        super().__init__(config)
        self._resolve = resolver
        self._client: httpx.AsyncClient | None = None

    @property
    def allow_private(self) -> bool:
        return bool(self.config["allow_private"])

    # ---------------------------------------------------------------- destinations

    def check_target(self, target: str) -> str:
        """The URL as stored: absolute http(s), a host, no credentials, at most 2048
        characters, and (unless ``allow_private``) no forbidden address literal nor
        ``localhost`` name. Raises ``ValueError`` with the reason."""
        text = target.strip()
        if len(text) > URL_MAX:
            raise ValueError(f"a webhook URL is at most {URL_MAX} characters")
        if any(ord(c) < 33 or ord(c) == 127 for c in text):
            raise ValueError("a webhook URL may not hold spaces or control characters")
        try:
            url = httpx.URL(text)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if url.scheme not in ("http", "https"):
            raise ValueError("a webhook URL must start with http:// or https://")
        if not url.host:
            raise ValueError("a webhook URL needs a host")
        if url.userinfo:
            raise ValueError("a webhook URL may not hold a user name or password")
        if not self.allow_private:
            check_url_host(url.host)
        stored = str(url)
        if len(stored) > URL_MAX:
            raise ValueError(f"a webhook URL is at most {URL_MAX} characters once encoded")
        return stored

    async def vet_target(self, target: str) -> None:
        """Resolve the URL's host and refuse it (``ValueError``) when it does not resolve or
        when every address it resolves to is forbidden. Delivery checks again on connect."""
        url = httpx.URL(self.check_target(target))
        host = url.raw_host.decode("ascii")
        if self.allow_private or literal_address(host) is not None:
            return  # an address literal was judged by check_target
        try:
            addresses = await self._resolve(host, url.port or _default_port(url))
        except OSError as exc:
            raise ValueError(f"{url.host} does not resolve ({exc.strerror or exc})") from None
        reasons = [address_reason(address) for address in addresses]
        if not addresses:
            raise ValueError(f"{url.host} has no address")
        if all(reasons):
            raise ValueError(f"{url.host} reaches no public address: {reasons[0]}")

    def mask_target(self, target: str) -> str:
        """The URL with the values of its query hidden (they often hold a token)."""
        try:
            url = httpx.URL(target)
        except httpx.InvalidURL:
            return "<invalid URL>"
        if not url.query:
            return target
        query = "&".join(f"{key}=***" for key, _ in url.params.multi_items())
        return str(url.copy_with(query=query.encode("ascii", "replace")))

    def new_secret(self) -> str:
        """A fresh signing secret: ``whsec_`` + base64 of 32 random bytes."""
        return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")

    # ---------------------------------------------------------------- delivery

    @asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        """One HTTP client (its connections kept alive, at most ``concurrency``) for the
        sink's lifetime."""
        async with self._new_client() as client:
            self._client = client
            try:
                yield
            finally:
                self._client = None

    @asynccontextmanager
    async def _new_client(self) -> AsyncIterator[httpx.AsyncClient]:
        # Reading the CA bundle is file I/O: off the Trio loop.
        ssl_context = await trio.to_thread.run_sync(httpx.create_ssl_context)
        async with guarded_client(
            concurrency=int(self.config["concurrency"]),
            timeout_s=float(self.config["timeout_s"]),
            ssl_context=ssl_context,
            allow_private=self.allow_private,
            resolver=self._resolve,
        ) as client:
            yield client

    async def deliver(self, note: Notification) -> None:
        """POST ``note`` to its destination, signed; return once a 2xx came back, or raise a
        delivery error (module doc). Gives up after ``timeout_s`` (DeliveryFailed). Outside
        :meth:`open` (a one-off test notification) it uses a client of its own."""
        destination = note.destination
        if destination is None:
            raise DeliveryRefused("a webhook notification needs a destination")
        key = secret_key(destination.secret)
        body = encode_body(note)
        headers = sign(key, note.message_id(), int(time.time()), body)
        if self._client is not None:
            await self._post(self._client, destination.target, body, headers)
            return
        async with self._new_client() as client:
            await self._post(client, destination.target, body, headers)

    async def _post(
        self, client: httpx.AsyncClient, target: str, body: bytes, headers: dict[str, str]
    ) -> None:
        try:
            url = httpx.URL(target)
        except httpx.InvalidURL:
            raise DeliveryRefused("the destination's URL is not valid") from None
        host = url.host or "?"
        timeout_s = float(self.config["timeout_s"])
        with trio.move_on_after(timeout_s):
            try:
                async with client.stream("POST", url, content=body, headers=headers) as response:
                    snippet = await _read_some(response, SNIPPET_BYTES)
            except httpx.TimeoutException:
                raise DeliveryFailed(f"{host}: no answer within {timeout_s:g} s") from None
            except httpx.UnsupportedProtocol:
                raise DeliveryRefused(f"{host}: only http and https are supported") from None
            except httpx.TransportError as exc:
                raise DeliveryFailed(f"{host}: {type(exc).__name__}: {exc}") from None
            judge(response.status_code, response.headers, snippet, host)
            return
        raise DeliveryFailed(f"{host}: no answer within {timeout_s:g} s")


async def _read_some(response: httpx.Response, limit: int) -> str:
    """The first ``limit`` bytes of the body as text (a larger body is not read further)."""
    chunks = bytearray()
    async for chunk in response.aiter_raw():
        chunks += chunk
        if len(chunks) >= limit:
            break
    text = bytes(chunks[:limit]).decode("utf-8", "replace")
    return " ".join(text.split())[:200]


# ---------------------------------------------------------------- the pure parts


def secret_key(secret: str | None) -> bytes:
    """The HMAC key of a ``whsec_`` secret; :class:`DeliveryRefused` when there is none or it
    is malformed (the reason never shows it)."""
    if not secret:
        raise DeliveryRefused("the destination has no signing secret")
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise DeliveryRefused("the destination's signing secret is malformed") from None
    if not key:
        raise DeliveryRefused("the destination's signing secret is empty")
    return key


def encode_body(note: Notification) -> bytes:
    """The JSON body: ``type``, ``timestamp`` (when the alert fired) and ``data``. The same
    bytes on every retry of one notification."""
    when = note.data.get("triggered_at") or datetime.now(UTC).isoformat()
    event = EVENT_TYPES.get(note.event, f"alert.{note.event}")
    return msgspec.json.encode({"type": event, "timestamp": when, "data": note.data})


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode("ascii"),
    }


def judge(status: int, headers: Mapping[str, str], snippet: str, host: str) -> None:
    """Return for a 2xx, else raise the delivery error the answer means (module doc)."""
    if 200 <= status < 300:
        return
    reason = f"HTTP {status} from {host}" + (f": {snippet}" if snippet else "")
    if status == 410:
        raise DestinationGone(reason)
    if 300 <= status < 400:
        where = _redacted(headers.get("location", ""))
        raise DeliveryFailed(f"HTTP {status} from {host}: redirect{where} not followed")
    if status in RETRIED_4XX or status >= 500:
        raise DeliveryFailed(reason, retry_after_s(headers.get("retry-after")))
    if 400 <= status < 500:
        raise DeliveryRefused(reason)
    raise DeliveryFailed(reason)


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds from ``now``: delay-seconds or an HTTP date (RFC 9110);
    None when absent or unreadable, 0 for a date in the past."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _redacted(location: str) -> str:
    """`` to <scheme://host/path>`` of a redirect's target, without its query, or nothing."""
    try:
        url = httpx.URL(location)
    except httpx.InvalidURL:
        return ""
    if not url.host:
        return f" to {url.path[:100]}" if url.path else ""
    return f" to {url.scheme}://{url.host}{url.path[:100]}"


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


@hookimpl
def triggerbook_sinks() -> list[type[Sink]]:
    return [WebhookSink]
