"""The chat sink: each notification sent to a chat or push service through Apprise.

Users aim it with destinations of kind ``chat`` whose target is one Apprise URL
(``POST /api/destinations {"kind": "chat", "target": "tgram://BOT_TOKEN/CHAT_ID"}``): Telegram,
Slack, Discord, ntfy, Matrix, Mattermost, Pushover, Gotify and the rest of Apprise's 150+
services. The message is the one every human-facing sink writes (``engine.plugins.text``): the
subject as the title, the details as the body::

    title: BTCUSDT rose to 70,000.10 (above 70,000)
    body:  Alert:     BTC breakout
           Exchange:  binance
           ...

Apprise is synchronous (requests underneath), so each send runs in a worker thread,
``trio.to_thread.run_sync`` under a ``trio.CapacityLimiter`` of ``concurrency`` threads. The
delivery loop's deadline (``timeout_s``) cancels a send that hangs: the thread is abandoned
(``abandon_on_cancel``) and ends by itself on Apprise's socket timeouts (4 s to connect, 4 s per
read unless the URL says otherwise), keeping its limiter token until then, so a service that
hangs never piles up more than ``concurrency`` threads.

One Apprise object per destination, built on first use and kept in a bounded cache keyed by
the destination's id and target (an edited or re-created destination gets a new one), so a
service's per-object state (a detected Telegram chat) lives as long as the destination does.

Pacing: one send at a time per destination, and the next no sooner than the pause Apprise asks
for that service (``request_rate_per_sec``, seconds despite its name: ntfy and Pushover 5.5,
Slack 1.2, Matrix 0.5, Telegram, Discord and ``json`` none). The pause is waited out in Trio
before the thread starts, so the deadline cancels a waiting message before it is sent: a burst to
one destination that does not fit in ``timeout_s`` is retried later, never sent twice by an
abandoned thread. Other destinations are not held up beyond the workers the burst occupies.

Outcomes: Apprise reports failure with a False result and log lines, not exceptions. A failure
is :class:`DeliveryFailed` (retried), its reason taken from the lines Apprise logged for that one
call (``AppriseResult.logs()``: per call, so concurrent sends never mix their lines) with every
secret piece of the URL scrubbed; a target that no longer reads as a valid, allowed URL (Apprise
upgraded, ``schemes`` narrowed) is :class:`DeliveryRefused` (dead at once).

Secrets: the URL is only ever shown through :meth:`ChatSink.mask_target` (Apprise's privacy
form, ``engine.plugins.sink``), and no reason holds it.

Options of ``[sinks.chat]`` besides the common keys (``timeout_s`` defaults to 15 here):
``schemes``, the Apprise schemes users may pick, separated by commas or spaces (``"tgram,
slack, ntfys"``); empty (the default) allows every scheme the installed Apprise supports.
Self-hosted schemes (``json``, ``xml``, ``form``, ``ntfy`` with a host) reach any address the
engine can reach: list the schemes you want where that matters.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import apprise
import trio

from engine.plugins import (
    ConfigError,
    DeliveryFailed,
    DeliveryRefused,
    Destination,
    Notification,
    Sink,
)
from engine.plugins.text import subject, text_body
from triggerbook_apprise import urls

CACHE_MAX = 1024  # Apprise objects kept, least recently used dropped first
_SPLIT = re.compile(r"[\s,]+")


@dataclass(slots=True)
class _Service:
    """One destination's Apprise object, how its URL may be shown, and its pacing: one send at
    a time (``lock``), the next no sooner than ``next_at`` (``trio.current_time()``)."""

    client: apprise.Apprise
    visible: str
    interval: float  # Apprise's own pause between two requests to this service, in seconds
    lock: trio.Lock = field(default_factory=trio.Lock)
    next_at: float = float("-inf")


class ChatSink(Sink):
    """Sends each notification to its destination's Apprise URL, in a worker thread."""

    name = "chat"
    takes_destinations: ClassVar[bool] = True
    reaches_account: ClassVar[bool] = False
    timeout_s: ClassVar[float] = 15.0
    options: ClassVar[Mapping[str, Any]] = {"schemes": ""}

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.schemes = _allowed_schemes(str(self.config["schemes"]))
        self.limiter = trio.CapacityLimiter(max(1, int(self.config["concurrency"])))
        self._services: OrderedDict[tuple[int, str], _Service] = OrderedDict()
        # Apprise logs a service's reply as it came, which may quote the URL's secrets back;
        # its lines still reach the per-call capture that ``_send`` reads (handlers on the
        # ``apprise`` logger), but not the engine's log: the sink reports each failure itself,
        # scrubbed.
        logging.getLogger("apprise").propagate = False

    # ---------------------------------------------------------------- destinations

    def check_target(self, target: str) -> str:
        """The URL as stored (trimmed), if Apprise reads it as one URL of an allowed service;
        ``ValueError`` with a reason that never repeats the URL (``urls.service``). Pure: the
        service object is built, nothing is sent."""
        text = target.strip()
        urls.service(text, self.schemes)
        return text

    def mask_target(self, target: str) -> str:
        """Apprise's privacy form of the URL (``tgram://1...F/12345/``), without its query."""
        return urls.mask(target)

    # ---------------------------------------------------------------- delivery

    async def deliver(self, note: Notification) -> None:
        """Send the subject and details to the destination's service, in a worker thread.

        Raises :class:`DeliveryRefused` for a notification with no destination or a target
        that no longer reads as an allowed URL, :class:`DeliveryFailed` when the service did
        not take it (reason from Apprise's log lines of this call, secrets scrubbed)."""
        destination = note.destination
        if destination is None:
            raise DeliveryRefused("a chat notification needs a destination")
        found = self._service(destination)
        title = subject(note)
        # text_body starts with the subject: as the title already says it, the body need not.
        body = text_body(note).removeprefix(f"{title}\n\n")
        async with found.lock:
            # Wait out the service's pause here, where a deadline cancels before anything is
            # sent, rather than in Apprise's thread, where it would be abandoned mid-wait and
            # send anyway (a duplicate of the retry).
            await trio.sleep_until(found.next_at)
            try:
                problem = await trio.to_thread.run_sync(
                    partial(_send, found.client, title, body),
                    limiter=self.limiter,
                    abandon_on_cancel=True,
                )
            finally:
                found.next_at = trio.current_time() + found.interval
        if problem is not None:
            reason = urls.scrub(problem, destination.target, found.visible)
            raise DeliveryFailed(f"{found.visible}: {reason}")

    def _service(self, destination: Destination) -> _Service:
        """The destination's cached Apprise object, built on first use (LRU of ``CACHE_MAX``)."""
        key = (destination.id, destination.target)
        cached = self._services.get(key)
        if cached is not None:
            self._services.move_to_end(key)
            return cached
        try:
            found = urls.service(destination.target, self.schemes)
        except ValueError as exc:
            raise DeliveryRefused(f"the chat URL is no longer usable: {exc}") from None
        client = apprise.Apprise(asset=urls.ASSET)
        client.add(found)
        interval = max(0.0, float(getattr(found, "request_rate_per_sec", 0.0) or 0.0))
        made = _Service(client, urls.shown(found), interval)
        self._services[key] = made
        if len(self._services) > CACHE_MAX:
            self._services.popitem(last=False)
        return made


def _send(client: apprise.Apprise, title: str, body: str) -> str | None:
    """In a worker thread: one notify. None when the service took it, else why not, from the
    warnings and errors Apprise logged during this call (the last two), or its status."""
    with client.notify(
        body=body,
        title=title,
        body_format=apprise.NotifyFormat.TEXT,
        notify_type=apprise.NotifyType.INFO,
    ) as result:
        if result:
            return None
        lines = [entry.message.strip() for entry in result.logs() if entry.message.strip()]
        return "; ".join(lines[-2:]) or f"Apprise reported {result.status.name.lower()}"


def _allowed_schemes(text: str) -> frozenset[str]:
    """The ``schemes`` option as a set; ``ConfigError`` for a scheme Apprise does not know.

    Always asks Apprise for its schemes, even with no ``schemes``: that loads its service
    modules once, while the sink is built at start, rather than at the first request."""
    schemes = frozenset(s.lower().removesuffix("://") for s in _SPLIT.split(text) if s)
    unknown = sorted(schemes - urls.known_schemes())
    if unknown:
        raise ConfigError(
            f"[sinks.chat] schemes: Apprise has no scheme {', '.join(unknown)} "
            "(use the part before :// of an Apprise URL, such as tgram, slack, ntfys)"
        )
    return schemes
