"""The bottom of the web layer: what every other web module is handed, and nothing that serves.

Every web module is handed the engine's parts (:class:`engine.parts.Parts`, built once by
``engine/app.py``); here are :class:`WebSettings`, the web's knobs that are not in the
configuration file, and :class:`State`, the collaborators built once per app
(:func:`web.app.create_app`) and passed to every handler.
This module imports only the engine and the web's own leaf modules (auth, batcher, validation),
so everything above may import it and it imports nothing above.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from engine.parts import Parts
from web.auth import LoginGuard, PasswordHasher, RegistrationLimiter, TokenCodec
from web.batcher import CreateBatcher, ListBatcher
from web.validation import Body

MAX_BODY = 16 * 1024


@dataclass(frozen=True, slots=True)
class WebSettings:
    """Knobs of the web layer that are not in the configuration file (tests turn them down).

    ``bcrypt_rounds`` is bcrypt's cost, ``bcrypt_threads`` its worker threads and
    ``hash_queue`` how many hashes may wait for one (past it: 503, ``Overloaded``; ``None`` is
    4 x threads). ``login_*`` bound failed logins within ``login_window_s`` (the keys:
    ``web/auth.py``): ``login_per_user`` per (username, address) pair, ``login_per_username``
    per username from all addresses, ``login_per_address`` distinct usernames per address;
    ``grace_s`` is how long in-flight requests may
    finish once the server is cancelled. ``fast_lane`` serves the hottest requests past Quart
    (``web/fastlane.py``); off, every request goes through the app, which is what
    ``benchmarks/api_load.py`` compares it with. ``stream_*`` bound ``/api/stream``
    (``web/stream.py``): seconds between two prices of a symbol (and while the engine is busy,
    ``stream_busy_interval_s``), symbols per stream, messages
    queued for a client before it is dropped as too slow, streams per user and in all,
    seconds for the first (auth) message, and seconds a stream may stay silent (no ping).
    """

    bcrypt_rounds: int = 12
    bcrypt_threads: int = 2
    hash_queue: int | None = None
    max_body: int = MAX_BODY
    login_per_user: int = 5
    login_per_username: int = 50
    login_per_address: int = 20
    login_window_s: float = 300.0
    grace_s: float = 5.0
    fast_lane: bool = True
    stream_interval_s: float = 0.25
    stream_busy_interval_s: float | None = 1.0
    stream_symbols: int = 20
    stream_buffer: int = 256
    stream_per_user: int = 5
    stream_total: int = 1000
    stream_auth_s: float = 5.0
    stream_idle_s: float = 60.0


@dataclass(slots=True)
class State:
    """The web layer's collaborators, built once per server by :func:`web.app.create_app`."""

    ctx: Parts
    settings: WebSettings
    tokens: TokenCodec
    hasher: PasswordHasher
    logins: LoginGuard
    registrations: RegistrationLimiter
    creates: CreateBatcher  # run by web.server.run_web
    lists: ListBatcher  # run by web.server.run_web
    encoder: msgspec.json.Encoder = field(default_factory=msgspec.json.Encoder)
    bodies: dict[str, Body] = field(default_factory=dict)  # each route's body rules, by name
    openapi: bytes = b""  # the encoded document, built once by create_app
