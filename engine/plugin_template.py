"""``triggerbook plugins new NAME``: the skeleton of an exchange plugin package, tests included.

The skeleton is the guide's example (``docs/plugins.md``) with its name filled in: a package with
its entry point and build system, an ``Exchange`` for a made-up JSON protocol written with the
shared parsing helpers (``engine.feeds.parsing``), recorded frames, and tests on the conformance
kit (``engine.feeds.testing``) that pass as written. An author replaces the protocol with the
exchange's own, one test at a time. Nothing is overwritten: an existing folder is an error.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["NAME_RE", "write_plugin"]

NAME_RE = re.compile(r"[a-z][a-z0-9_]{1,30}")
"""A plugin's name: the feed's ``[feeds.<name>]`` and the alerts' ``exchange``."""

_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "triggerbook-{dash}"
version = "0.1.0"
description = "{title} price feed for triggerbook"
requires-python = ">=3.11"
dependencies = ["triggerbook>=0.1"]

[project.entry-points.triggerbook]
{name} = "triggerbook_{name}"

[tool.setuptools]
packages = ["triggerbook_{name}"]

[tool.pytest.ini_options]
trio_mode = true   # pytest-trio runs the async tests
"""

_MODULE = '''\
"""{title}: one WebSocket connection, live subscribe, a trade channel.

Replace the made-up protocol below with the exchange's documented one. Sample frame (keep a real
one here and in tests/data/{name}.jsonl, with where it is documented):

    {{"type": "trade", "symbol": "BTC-USD", "price": "70000.10", "ts": 1700000000000}}
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.feeds.parsing import (
    Message,
    decode_object,
    encode_json,
    epoch_ms,
    exact_price,
    handler_for,
    no_ticks,
)
from engine.plugins import Exchange, SubscriptionRejected, Tick, hookimpl


class {cls}(Exchange):
    """{title}, one connection, live (un)subscribe."""

    name = "{name}"
    url = "wss://ws.{name}.example/v1"
    max_messages_per_second = 5.0
    symbols_per_message = 50
    stale_after_s = 60.0
    heartbeat_interval_s = 20.0

    input_pattern = "^[A-Za-z0-9]{{1,12}}[/-][A-Za-z0-9]{{1,12}}$"  # btc/usd, BTC-USD
    symbol_pattern = "^[A-Z0-9]{{1,12}}-[A-Z0-9]{{1,12}}$"
    symbol_rule = "BASE-QUOTE, such as BTC-USD"

    def spell_symbol(self, symbol: str) -> str:
        return symbol.upper().replace("/", "-")

    # The runner numbers each (un)subscribe batch: put the number where the exchange echoes it
    # in its reply (here "id"), so an error reply maps back to the batch's symbols. A protocol
    # that echoes no id overrides only subscribe_frames/unsubscribe_frames.
    def subscribe_request(self, symbols: Sequence[str], request_id: int) -> list[str]:
        return self._requests("subscribe", symbols, request_id)

    def unsubscribe_request(self, symbols: Sequence[str], request_id: int) -> list[str]:
        return self._requests("unsubscribe", symbols, request_id)

    def subscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        return self._requests("subscribe", symbols, None)

    def unsubscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        return self._requests("unsubscribe", symbols, None)

    def _requests(self, op: str, symbols: Sequence[str], request_id: int | None) -> list[str]:
        step = self.symbols_per_message  # never more in one frame (the kit checks it)
        numbered = {{"id": request_id}} if request_id is not None else {{}}
        return [
            encode_json({{"op": op, "args": list(symbols[i : i + step]), **numbered}})
            for i in range(0, len(symbols), step)
        ]

    def heartbeat_frame(self) -> str:
        return encode_json({{"op": "ping"}})

    def parse(self, frame: str | bytes, received_ns: int) -> list[Tick]:
        msg = decode_object(frame)  # BadFrame "not-json" / "unknown-event"
        handler = handler_for(_HANDLERS, msg.get("type", msg.get("event")), frame)
        return handler(self, msg, frame, received_ns)

    def _trade(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        price = exact_price(msg.get("price"), frame)  # BadFrame "bad-price"
        time_ms = epoch_ms(msg.get("ts"), frame)
        return [Tick(self.name, str(msg.get("symbol", "")), price, time_ms, received_ns)]

    def _error(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        # {{"event": "error", "msg": "...", "id": 7}}: the runner knows request 7's symbols
        symbol = msg.get("symbol")
        request_id = msg.get("id") if isinstance(msg.get("id"), int) else None
        symbols = (symbol,) if isinstance(symbol, str) else ()
        raise SubscriptionRejected(str(msg.get("msg", "")), symbols, request_id)


_HANDLERS = {{
    "trade": {cls}._trade,
    "subscribed": no_ticks,
    "unsubscribed": no_ticks,
    "pong": no_ticks,
    "error": {cls}._error,
}}


@hookimpl
def triggerbook_exchanges() -> list[type[Exchange]]:
    return [{cls}]
'''

_FRAMES = """\
# Made up for the skeleton: replace with frames from the exchange's documentation (say where from)
{"event": "subscribed", "args": ["BTC-USD"]}
{"type": "trade", "symbol": "BTC-USD", "price": "70000.10", "ts": 1700000000000}
{"type": "trade", "symbol": "ETH-USD", "price": "3500.5", "ts": 1700000000001}
"""

_TESTS = '''\
"""{title}: parse on recorded frames, bad frames by kind, the real runner on a local server."""

from __future__ import annotations

import json
from pathlib import Path

import trio
from engine.feeds.testing import (
    Request,
    check_bad_frames,
    check_heartbeat,
    check_parse,
    check_rejection,
    check_symbols_per_message,
    run_conformance,
    run_heartbeat_check,
)

from triggerbook_{name} import {cls}

FRAMES = Path(__file__).parent / "data" / "{name}.jsonl"


def test_parse_is_exact() -> None:
    check_parse(
        {cls}(),
        FRAMES,
        [("BTC-USD", "70000.10", 1700000000000), ("ETH-USD", "3500.5", 1700000000001)],
    )


def test_bad_frames() -> None:
    assert check_bad_frames(
        {cls}(), ["nope", '{{"type": "trade", "price": "x", "ts": 1}}', '{{"type": "candle"}}']
    ) == ["not-json", "bad-price", "unknown-event"]


def read_request(message: str) -> Request | None:
    """The server side of the protocol: what the client asked, and the replies to send back
    (an ack echoing the request's id; an error for the unknown symbol NOPE-USD)."""
    msg = json.loads(message)
    if msg["op"] == "ping":
        return Request("ping", (), (json.dumps({{"event": "pong"}}),))
    args = [a for a in msg.get("args", []) if a != "NOPE-USD"]
    replies = [json.dumps({{"event": f"{{msg['op']}}d", "args": args, "id": msg.get("id")}})]
    if len(args) < len(msg.get("args", [])):
        replies.append(json.dumps({{"event": "error", "msg": "unknown", "id": msg.get("id")}}))
    return Request(msg["op"], tuple(args), tuple(replies))


async def test_the_runner_conversation() -> None:
    with trio.fail_after(20):
        report = await run_conformance({cls}, FRAMES, read_request)
    assert {{t.symbol for t in report.ticks}} == {{"BTC-USD", "ETH-USD"}}


def test_requests_keep_to_symbols_per_message() -> None:
    check_symbols_per_message({cls}(), read_request)


def test_heartbeat_and_its_answer() -> None:
    check_heartbeat({cls}(), ['{{"event": "pong"}}'])


async def test_the_answers_keep_a_quiet_connection_fresh() -> None:
    with trio.fail_after(20):
        await run_heartbeat_check({cls}, read_request, "BTC-USD")


def test_an_error_reply_names_its_request() -> None:
    [rejected] = check_rejection({cls}(), read_request, ["BTC-USD", "NOPE-USD"], request_id=7)
    assert rejected.request_id == 7
'''

_README = """\
# triggerbook-{dash}

{title} price feed for triggerbook, as a plugin package (entry-point group `triggerbook`).

    .venv/bin/pip install -e path/to/triggerbook-{dash}
    .venv/bin/python -m pytest path/to/triggerbook-{dash}/tests
    .venv/bin/triggerbook plugins      # lists: exchange {name} ...

Try it against the real engine without the exchange: `triggerbook plugins serve {name}` serves
`tests/data/{name}.jsonl` (and new trades made from it) locally and prints the `url` to put in
`[feeds.{name}]`.

Enable it with `[feeds.{name}] enabled = true` in `config.toml`. See triggerbook's
`docs/plugins.md` for the contract, the shared parsing helpers and the conformance kit.
"""


def write_plugin(name: str, parent: Path) -> Path:
    """Write the skeleton of plugin ``name`` into ``parent/triggerbook-<name>``; its folder.

    Raises ``ValueError`` for a name that is not 2-31 lower-case letters, digits or ``_``
    (starting with a letter), and ``FileExistsError`` when the folder exists.
    """
    if not NAME_RE.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a plugin name: 2-31 lower-case letters, digits or _, "
            "starting with a letter"
        )
    dash = name.replace("_", "-")
    root = parent / f"triggerbook-{dash}"
    root.mkdir(parents=True)  # FileExistsError: never overwrite an author's work
    values = {
        "name": name,
        "dash": dash,
        "title": name.replace("_", " ").title(),
        "cls": "".join(part.title() for part in name.split("_")),
    }
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"triggerbook_{name}/__init__.py": _MODULE,
        f"tests/data/{name}.jsonl": _FRAMES,
        f"tests/test_{name}.py": _TESTS,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        text = template if relative.endswith(".jsonl") else template.format(**values)
        path.write_text(text, encoding="utf-8")
    return root
