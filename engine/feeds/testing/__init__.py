"""The conformance kit: test an exchange plugin on recorded frames and through the real runner.

For plugin authors' own test suites (installed as a pytest plugin, ``pytest11`` entry point
``triggerbook``, which adds the ``manual_demand`` fixture). This package is the kit's one face:
everything an author's tests name is importable from here (``__all__``), the runner's pieces
included (``ExchangeFeed``, ``FeedStates``, ``Metrics``, ``Tick``), so a plugin's tests import
one module. It imports without pytest (the operator's server runs in production). Its parts,
one private module each:

1. Pure checks. ``_frames``: :func:`load_frames` reads recorded frames (one per line, ``#``
   comments); :func:`check_parse` asserts that parsing them gives the expected ticks exactly;
   :func:`check_bad_frames` that each bad frame raises :class:`BadFrame`. ``_checks``:
   :func:`check_symbols_per_message` that no (un)subscribe frame names more than
   ``symbols_per_message`` symbols; :func:`check_heartbeat` the heartbeat rules;
   :func:`check_rejection` that an error reply maps back to its request id or its symbols.
2. The server side of a protocol (``_protocol``): :class:`Request`, what a ``read_request``
   function the author writes makes of one client message; :func:`read_binance_request`;
   :func:`infer_read_request`, which learns it from a plugin's own requests.
3. A local exchange (``_server``): :class:`ExchangeServer` (or :func:`serve_exchange`) is a
   trio-websocket server on port 0 that reads subscribe/unsubscribe requests through
   ``read_request``, answers them, replays the recorded frames of the subscribed symbols, records
   the whole conversation, and can ping, close, and send garbage on demand. ``_rest``:
   :class:`RestServer` (:func:`serve_rest`), a local HTTP endpoint for symbol lists and prices.
4. The real runner (``_conformance``): :func:`run_conformance` drives the REAL feed runner
   against that server: subscribe only the demanded symbols -> frames -> exact ticks ->
   unsubscribe as demand shrinks; :func:`run_heartbeat_check` that heartbeats and their answers
   keep a quiet connection up. ``_demand``: :class:`ManualDemand` and its fixture.
5. For operators (``_plugin_server``, ``_trades``): :func:`serve_plugin` (``triggerbook plugins
   serve NAME``), an exchange server speaking a plugin's frames with no ``read_request`` to
   write, replaying its recording and making up new trades (:class:`TradeMaker`), to try the
   plugin against the real engine.

See ``docs/plugins.md`` for a complete example.
"""

from __future__ import annotations

from engine.feeds.runner import ExchangeFeed
from engine.feeds.status import FeedStates
from engine.feeds.testing._checks import (
    check_heartbeat,
    check_rejection,
    check_symbols_per_message,
)
from engine.feeds.testing._conformance import (
    ConformanceReport,
    run_conformance,
    run_heartbeat_check,
)
from engine.feeds.testing._demand import ManualDemand, manual_demand
from engine.feeds.testing._frames import (
    ExpectedTick,
    check_bad_frames,
    check_parse,
    frames_by_symbol,
    load_frames,
)
from engine.feeds.testing._plugin_server import find_frames, serve_plugin
from engine.feeds.testing._protocol import (
    JsonPath,
    ReadRequest,
    Request,
    infer_read_request,
    read_binance_request,
)
from engine.feeds.testing._rest import RestReply, RestRoute, RestServer, serve_rest
from engine.feeds.testing._server import ExchangeServer, ServerConnection, serve_exchange
from engine.feeds.testing._trades import TradeMaker
from engine.metrics import Metrics
from engine.model import Tick

__all__ = [
    "ConformanceReport",
    "ExchangeFeed",
    "ExchangeServer",
    "ExpectedTick",
    "FeedStates",
    "JsonPath",
    "ManualDemand",
    "Metrics",
    "ReadRequest",
    "Request",
    "RestReply",
    "RestRoute",
    "RestServer",
    "ServerConnection",
    "Tick",
    "TradeMaker",
    "check_bad_frames",
    "check_heartbeat",
    "check_parse",
    "check_rejection",
    "check_symbols_per_message",
    "find_frames",
    "frames_by_symbol",
    "infer_read_request",
    "load_frames",
    "manual_demand",
    "read_binance_request",
    "run_conformance",
    "run_heartbeat_check",
    "serve_exchange",
    "serve_plugin",
    "serve_rest",
]
