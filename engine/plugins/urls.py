"""The pure check of a feed's WebSocket URL, shared by the exchange contract and the connection.

Here rather than in ``engine/feeds/connection.py`` so that the exchange contract (pure data, no
I/O) can check its URL without importing a WebSocket library.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["shown_url", "split_ws_url"]


def split_ws_url(url: str) -> tuple[str, int, str, bool]:
    """``(host, port, resource, tls)`` of a ``ws://`` or ``wss://`` URL; ValueError otherwise.

    ``resource`` is the path (``/`` when empty) with its query string.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a WebSocket URL (ws:// or wss://): {shown_url(url)!r}")
    tls = parts.scheme == "wss"
    port = parts.port or (443 if tls else 80)
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return parts.hostname, port, resource, tls


def shown_url(url: str) -> str:
    """``url`` without its query, fragment or credentials: a feed's token (Finnhub puts it in
    the query) must not reach a log or an error message."""
    head = url.split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = head.partition("//")
    if not sep:
        return head
    netloc, slash, path = rest.partition("/")
    return f"{scheme}{sep}{netloc.rsplit('@', 1)[-1]}{slash}{path}"
