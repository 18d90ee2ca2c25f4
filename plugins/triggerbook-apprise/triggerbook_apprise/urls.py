"""Apprise URLs as the chat sink reads, shows and scrubs them; pure, no I/O.

A chat destination's target is one Apprise URL (``tgram://BOT_TOKEN/CHAT_ID``,
``slack://T../B../TOKEN``, ``ntfy://host/topic``): the service is its scheme, and its secret (a
bot token, a webhook token, a password) sits somewhere in the rest, in a place that differs per
service. So the URL is never shown or logged as typed:

- :func:`service` reads it with Apprise's own parser (``Apprise.instantiate``, which builds the
  service object and sends nothing), after checking here the two things Apprise would otherwise
  log in full at ERROR level: that there is a ``scheme://`` and that Apprise knows the scheme;
- :func:`shown` is Apprise's privacy form of it (``tgram://1...F/12345``), which each service
  masks where it knows its secrets are, without the query (mostly defaults, and the place for
  a service's extra tokens);
- :func:`scrub` takes out of a free text (a service's failure message) every piece of the URL
  that the privacy form hides.

Runtime complexity: every function is linear in the length of the URL and of the text; reading
a URL with Apprise costs about 0.3-0.5 ms (measured on the 2-core dev machine).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from urllib.parse import unquote

import apprise
from apprise.manager_plugins import NotificationManager
from apprise.utils.parse import parse_urls

URL_MAX = 2048
MASKED_MAX = 4096
SCRUBBED = "***"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31})://")
# The pieces of a URL between its delimiters; one shorter than this is too common to hide.
_PIECE = re.compile(r"[^/:@?&=#,;+\s]{3,}")
_PLUGINS = NotificationManager()  # Apprise's one registry of services (a shared singleton)
# Services build no files: persistent storage (Apprise caches some lookups) stays in memory.
ASSET = apprise.AppriseAsset(
    app_id="triggerbook",
    app_desc="triggerbook price alerts",
    storage_mode=apprise.PersistentStoreMode.MEMORY,
    secure_logging=True,
)


@functools.cache
def known_schemes() -> frozenset[str]:
    """Every scheme the installed Apprise knows (``tgram``, ``slack``, ``ntfy``, ``ntfys``, ...).

    The first call loads Apprise's service modules (about 0.2-0.5 s): the sink calls it when it
    is built, at the engine's start, not on the event loop during a request."""
    return frozenset(scheme.lower() for scheme in _PLUGINS.schemas())


def scheme_of(target: str) -> str | None:
    """The URL's scheme in lower case, or None when it does not start with ``scheme://``."""
    match = _SCHEME.match(target)
    return match.group(1).lower() if match else None


def service(target: str, schemes: Collection[str] = ()) -> apprise.NotifyBase:
    """The Apprise service object of ``target``, built without sending anything.

    ``schemes``: the schemes allowed (empty: every one Apprise knows). Raises ``ValueError``
    with a reason that names at most the scheme, never the rest of the URL: not one URL of at
    most ``URL_MAX`` printable characters, no ``scheme://``, a scheme Apprise does not know or
    the operator did not allow, a service not available on this machine (desktop
    notifications), or a URL Apprise cannot read for its service.
    """
    if len(target) > URL_MAX:
        raise ValueError(f"a chat URL is at most {URL_MAX} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in target):
        raise ValueError("a chat URL may not hold spaces or control characters")
    scheme = scheme_of(target)
    if scheme is None:
        raise ValueError(
            "not an Apprise URL: it must start with the service's scheme, such as "
            "tgram://, slack://, discord:// or ntfy://"
        )
    if scheme not in known_schemes():
        raise ValueError(f"unknown chat service {scheme}:// (Apprise has no such scheme)")
    if schemes and scheme not in schemes:
        raise ValueError(f"{scheme}:// is not allowed here (allowed: {', '.join(sorted(schemes))})")
    if len(parse_urls(target)) != 1:
        raise ValueError("a chat destination is one URL; add one destination per service")
    if not _PLUGINS[scheme].enabled:
        raise ValueError(f"{scheme}:// is not available on this machine")
    found = apprise.Apprise.instantiate(target, asset=ASSET)
    if found is None:
        raise ValueError(
            f"not a valid {scheme}:// URL: a part is missing or malformed "
            f"(see Apprise's page for {_PLUGINS[scheme].service_name})"
        )
    return found


def shown(found: apprise.NotifyBase) -> str:
    """The service's URL in Apprise's privacy form, without its query: what responses and log
    lines show (``tgram://1...F/12345/``, ``ntfy://user:****@host/topic``)."""
    return str(found.url(privacy=True)).split("?", 1)[0]


@functools.lru_cache(maxsize=MASKED_MAX)
def mask(target: str) -> str:
    """``target`` as it may be shown: :func:`shown` when Apprise reads it, else only its scheme
    (``foo://***``), or ``***`` without one. Never raises.

    Remembered for the last ``MASKED_MAX`` targets: reading a URL costs Apprise about half a
    millisecond, and a list of destinations masks every target on the event loop."""
    try:
        return shown(service(target))
    except ValueError:
        scheme = scheme_of(target)
        return f"{scheme}://{SCRUBBED}" if scheme else SCRUBBED


def secrets_of(target: str, visible: str) -> list[str]:
    """The pieces of ``target`` (as typed, and %-decoded) that ``visible`` does not show,
    longest first: what :func:`scrub` hides."""
    pieces = set(_PIECE.findall(target)) | set(_PIECE.findall(unquote(target)))
    return sorted((p for p in pieces if p not in visible), key=len, reverse=True)


def scrub(text: str, target: str, visible: str, limit: int = 300) -> str:
    """``text`` with every piece of ``target`` that ``visible`` hides replaced by ``***``, cut
    to ``limit`` characters: a failure message safe to keep as ``last_error``."""
    for piece in secrets_of(target, visible):
        text = text.replace(piece, SCRUBBED)
    return text if len(text) <= limit else text[: limit - 3] + "..."
