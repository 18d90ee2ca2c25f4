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

Symbols (:class:`SymbolRules`): ``input_pattern`` is what a user may write, ``symbol_pattern`` the
exchange's own spelling, ``spell_symbol`` turns the one into the other; ``normalise_symbol`` and
``check_symbol`` raise ``ValueError`` with a human reason for anything else. Optional, pure too:
``symbols_url``/``parse_symbols`` (the list of traded symbols, refreshed by
``engine.feeds.symbols``) and ``price_url``/``parse_price`` (one symbol's last price over REST).

The runner never passes on a tick out of ``engine.limits`` (a skipped ``out-of-range`` frame),
so ``parse`` need not check ranges; it only has to refuse what it cannot read.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar

from engine.errors import ConfigError
from engine.limits import SYMBOL_MAX
from engine.model import Tick
from engine.plugins.urls import split_ws_url

# The rules of an exchange that states none: letters, digits and ``. _ : / -``, upper-cased.
GENERIC_SYMBOL = f"^[A-Z0-9][A-Z0-9._:/-]{{0,{SYMBOL_MAX - 1}}}$"
GENERIC_INPUT = f"^[A-Za-z0-9][A-Za-z0-9._:/-]{{0,{SYMBOL_MAX - 1}}}$"
GENERIC_RULE = f"letters, digits and . _ : / - (at most {SYMBOL_MAX} characters)"


def any_case(word: str) -> str:
    """``word`` as a pattern matching it in either case (``usd`` -> ``[Uu][Ss][Dd]``), for input
    patterns that must stay ECMA-262 regexes without flags."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _shown(symbol: str) -> str:
    """``symbol`` quoted for an error message, cut short (a request may send a megabyte)."""
    return repr(symbol) if len(symbol) <= 40 else repr(symbol[:40]) + "..."


class SymbolRules:
    """How a feed spells symbols: pure class data and functions, shared by exchanges and sources.

    ``input_pattern`` (what a user may write) and ``symbol_pattern`` (the exchange's spelling) are
    anchored regexes in the common subset of Python and ECMA-262 (no lookarounds, no flags, no
    ``\\d``), so the OpenAPI document can state them; a symbol is also at most
    ``engine.limits.SYMBOL_MAX`` characters, before and after spelling. ``spell_symbol`` must turn
    every input match into a ``symbol_pattern`` match: then :meth:`normalise_symbol` accepts
    exactly the strings that match ``input_pattern`` (the plugin tests check it with hypothesis).
    ``symbol_rule`` says the spelling in words for error messages.
    """

    name: ClassVar[str]
    symbol_pattern: ClassVar[str] = GENERIC_SYMBOL
    input_pattern: ClassVar[str] = GENERIC_INPUT
    symbol_rule: ClassVar[str] = GENERIC_RULE

    def spell_symbol(self, symbol: str) -> str:
        """The exchange's spelling of an input that matches ``input_pattern`` (default: upper
        case). Only called on such inputs."""
        return symbol.upper()

    def normalise_symbol(self, symbol: str) -> str:
        """The exchange's canonical spelling of a user-given symbol.

        Raises ``ValueError`` with a human reason when ``symbol`` does not match
        ``input_pattern`` (or is longer than ``SYMBOL_MAX``).
        """
        if len(symbol) > SYMBOL_MAX or _compiled(self.input_pattern).fullmatch(symbol) is None:
            raise ValueError(self._refusal(symbol))
        return self.check_symbol(self.spell_symbol(symbol))

    def check_symbol(self, symbol: str) -> str:
        """``symbol`` itself when it is spelt as the exchange spells symbols (``symbol_pattern``,
        at most ``SYMBOL_MAX`` characters); else ``ValueError`` with a human reason."""
        if len(symbol) > SYMBOL_MAX or _compiled(self.symbol_pattern).fullmatch(symbol) is None:
            raise ValueError(self._refusal(symbol))
        return symbol

    def _refusal(self, symbol: str) -> str:
        return f"{_shown(symbol)} is not a symbol of {self.name}: {self.symbol_rule}"


class Exchange(SymbolRules, ABC):
    """Base class of WebSocket exchanges. Subclasses set the class attributes and override
    ``subscribe_frames``, ``unsubscribe_frames`` and ``parse``, and may override the symbol rules
    (:class:`SymbolRules`) and the REST pieces (``symbols_url`` and the rest).

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
    # Reconnect backoff (engine.backoff): full jitter, uniform(0, min(cap, base * 2**attempt));
    # the attempt count resets once a connection stayed up for ``healthy_after_s``.
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
        # How often ``engine.feeds.symbols`` fetches the list of traded symbols again.
        self.symbols_refresh_s: float = float(self.config.get("symbols_refresh_s", 3600.0))
        if not self.symbols_refresh_s > 0:
            raise ConfigError(
                f"[feeds.{self.name}] symbols_refresh_s must be > 0, got {self.symbols_refresh_s}"
            )

    @classmethod
    def config_section(cls) -> dict[str, Any]:
        """The keys of ``[feeds.<name>]`` with their defaults, for the configuration schema."""
        return {
            "enabled": cls.enabled_by_default,
            "url": cls.url,
            "stale_after_s": float(cls.stale_after_s),
            **cls.options,
        }

    def connect_url(self) -> str:
        """The URL to open for one connection (default: the configured base URL)."""
        return self.base_url

    @abstractmethod
    def subscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """Text frames that subscribe ``symbols`` (the runner passes at most
        ``symbols_per_message`` of them at a time)."""

    @abstractmethod
    def unsubscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """Text frames that unsubscribe ``symbols``."""

    def subscribe_request(self, symbols: Sequence[str], request_id: int) -> list[str]:
        """Frames that subscribe ``symbols`` as one request the runner numbers ``request_id``.

        The runner calls this, never ``subscribe_frames`` directly: it cuts every change into
        batches of at most ``symbols_per_message`` symbols and numbers each batch (a positive
        ``int``, unique on the connection). An exchange whose replies echo a request id puts
        ``request_id`` in the frame and raises ``SubscriptionRejected(..., request_id=...)`` for
        an error reply, so the runner knows which symbols were refused even when the reply names
        none. Default: ``subscribe_frames(symbols)``, no id.
        """
        return self.subscribe_frames(symbols)

    def unsubscribe_request(self, symbols: Sequence[str], request_id: int) -> list[str]:
        """Frames that unsubscribe ``symbols`` as request ``request_id`` (see
        :meth:`subscribe_request`). Default: ``unsubscribe_frames(symbols)``, no id."""
        return self.unsubscribe_frames(symbols)

    def heartbeat_frame(self) -> str | None:
        """An application-level ping to send every ``heartbeat_interval_s``, if any."""
        return None

    def symbols_url(self) -> str | None:
        """The REST URL of the exchange's list of traded symbols, or None when it has none
        (then every symbol is "unverified"). Fetched with GET and read by ``parse_symbols``."""
        return None

    def parse_symbols(self, body: bytes) -> frozenset[str]:
        """The traded symbols in the body of ``symbols_url``, in this exchange's spelling.

        Raises ``ValueError`` for a body it cannot read (the previous list is kept).
        """
        raise ValueError(f"{self.name} describes no symbol list")

    def price_url(self, symbol: str) -> str | None:
        """The REST URL of ``symbol``'s last price (``symbol`` already normalised), or None."""
        return None

    def parse_price(self, body: bytes, symbol: str) -> Decimal:
        """The last price of ``symbol`` in the body of ``price_url(symbol)``.

        Raises ``ValueError`` for a body it cannot read or a price that is not finite and > 0.
        """
        raise ValueError(f"{self.name} describes no price URL")

    @abstractmethod
    def parse(self, frame: str | bytes, received_ns: int) -> list[Tick]:
        """Turn one frame into ticks; control replies (acks, pongs) give ``[]``.

        Raises :class:`engine.errors.BadFrame` for a frame it cannot understand and
        :class:`engine.errors.SubscriptionRejected` for an error reply to a (un)subscribe.
        """
