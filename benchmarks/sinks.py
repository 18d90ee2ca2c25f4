"""``triggerbook bench sinks [--json]``: the notification sinks and their delivery, each against a
naive baseline in the same run.

    triggerbook bench sinks [--mails N] [--webhooks N] [--connections C] [--concurrency W]
                            [--smtp-receivers P] [--idle N] [--burst N] [--backlog N]
                            [--frames N] [--feed-rounds K] [--repeats R] [--json]

The receivers run in processes of their own (``benchmarks/receivers.py``: aiosmtpd, and a
minimal trio + h11 HTTP server; ``--smtp-receivers P`` runs P aiosmtpd processes on one port
with ``SO_REUSEPORT``), so they do not share this process's CPU. Figures:

- **mails/s** (``mail_*``): ``EmailSink.deliver`` (its pool of ``C`` connections, ``W`` callers,
  each mail composed by the sink) on the trio-asyncio loop, against bare aiosmtplib on a plain
  asyncio loop sending the same mails, composed beforehand, one after another on one kept-open
  connection. ``mail_ratio`` = sink / bare (target >= 3, and >= 1,000 mails/s).
- **webhooks/s** (``webhook_*``): ``WebhookSink.deliver`` (body, signature, guarded transport,
  ``W`` callers) against a bare ``httpx.AsyncClient`` (``W`` connections) posting the same signed
  bodies, signed beforehand. ``webhook_ratio`` = sink / bare (target >= 0.8).
- **fire-commit-to-delivered** (``*_idle_p50_ms`` ... ``*_burst_p99_ms``) for console and
  webhook, on a fresh embedded Postgres through the real path: fires into
  ``run_fire_recorder``, which commits and calls ``committed=delivery.wake``; ``Delivery`` claims
  the outbox rows and hands them to the sinks. From the moment ``record_fires`` returned (the
  commit) to the moment the sink's ``deliver`` returned (the line logged; the receiver's 2xx
  back). Idle: ``--idle`` fires one at a time, each after the last was delivered and a 20 ms pause;
  burst: ``--burst`` fires queued at once (one tick firing them all). Target idle p99 < 50 ms.
- **feed under a mail backlog** (``feed_*``): ``bench feed``'s pair of runs (bare WebSocket
  receiver, then the whole feed -> book path, ``benchmarks/feed.py``) in this process, first
  with no delivery running, then while the email loop drains ``--backlog`` queued mails in the same
  Trio loop. ``feed_ratio_*`` is feed / bare in each; the target is the busy ratio within noise
  of the idle one. Only busy rounds that ended with mails still queued count
  (``feed_busy_rounds_under_drain`` of ``--feed-rounds``); ``feed_backlog_left`` is how many were
  queued when the last one ended; ``backlog_mails_per_s`` is the drain's rate through the loop.
  The ratio compares two clients that the drain slows alike; ``feed_frames_per_s_*`` and
  ``feed_tick_to_fire_*`` (the saturated feed's, as ``bench feed``) show what the drain takes.

Rates are medians over ``--repeats`` interleaved runs (bare, then sink, each time). ``*_cpu_us``
is this process's CPU per message (``time.process_time``): on a shared machine the wall rates
swing with other processes, the CPU cost per message does not. ``*_receiver_load`` is the
receiving processes' CPU seconds per wall second during the bare or the sink's runs (near the
number of receiver processes: the receiver is the ceiling, not the client).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import aiosmtplib
import httpx
import trio
import trio_asyncio

from benchmarks import feed
from benchmarks.receivers import HOST, Receivers, plain_asyncio
from engine.config import DatabaseConfig
from engine.metrics import Metrics
from engine.model import Destination, Fire, Notification, Tick, Trigger
from engine.quarantine import Quarantine
from engine.sinks.console import ConsoleSink
from engine.sinks.delivery import Delivery
from engine.sinks.email import EmailSink, compose
from engine.sinks.webhook import WebhookSink, encode_body, secret_key, sign
from engine.store import Store, open_store
from engine.store.recorder import run_fire_recorder

SENDER = "alerts@bench.example"
RECIPIENT = "ada@bench.example"
IDLE_PAUSE_S = 0.02
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # a fixed test secret (base64)


def fire_data(i: int) -> dict[str, object]:
    """What the outbox holds for one fire (``Notification.data``), numbered ``i``."""
    return {
        "alert_id": str(i),
        "name": f"bench alert {i}",
        "username": "ada",
        "email": RECIPIENT,
        "exchange": "binance",
        "symbol": "BTCUSDT",
        "direction": "above",
        "target_price": "70000",
        "triggered_price": "70000.10",
        "created_at": "2026-11-25T17:00:00+00:00",
        "triggered_at": "2026-11-25T17:36:16.123456+00:00",
    }


@dataclass
class Timed:
    """One timed run: messages, wall and CPU seconds of this process, receivers' CPU seconds."""

    n: int
    wall_s: float
    cpu_s: float
    receiver_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.n / self.wall_s

    @property
    def cpu_us(self) -> float:
        return self.cpu_s * 1e6 / self.n

    @property
    def receiver_load(self) -> float:
        return self.receiver_cpu_s / self.wall_s


class _Clock:
    """Wall, CPU and the receivers' CPU, from when it was made."""

    def __init__(self, receivers: Receivers) -> None:
        self._receivers = receivers
        self._recv = receivers.cpu_s()
        self._cpu = time.process_time()
        self._wall = time.perf_counter()

    def stop(self, n: int) -> Timed:
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        return Timed(n, wall, cpu, self._receivers.cpu_s() - self._recv)


async def _workers(count: int, work: Callable[[Any], Any], items: Sequence[Any]) -> None:
    """``count`` tasks taking ``items`` in turn until none is left."""
    todo = iter(items)

    async def worker() -> None:
        for item in todo:
            await work(item)

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(worker)


# -------------------------------------------------------------------------------------------------
# mails/s
# -------------------------------------------------------------------------------------------------


def mail_notes(n: int) -> list[Notification]:
    return [Notification(i, i, "email", fire_data(i)) for i in range(1, n + 1)]


def bare_mail(receivers: Receivers, notes: list[Notification]) -> Timed:
    """The naive baseline: one aiosmtplib connection on plain asyncio, mails composed first."""
    messages = [
        compose(n, sender=SENDER, recipient=RECIPIENT, domain="bench.example") for n in notes
    ]

    async def send() -> Timed:
        smtp = aiosmtplib.SMTP(hostname=HOST, port=receivers.port, local_hostname="bench")
        await smtp.connect()
        clock = _Clock(receivers)
        for message in messages:
            await smtp.sendmail(SENDER, [RECIPIENT], message)
        timed = clock.stop(len(messages))
        await smtp.quit()
        return timed

    with plain_asyncio() as runner:
        return runner.run(send())


def email_sink(port: int, connections: int, concurrency: int) -> EmailSink:
    return EmailSink(
        {
            "host": HOST,
            "port": port,
            "sender": SENDER,
            "helo_name": "bench",
            "connections": connections,
            "concurrency": concurrency,
        }
    )


async def sink_mail(
    receivers: Receivers, notes: list[Notification], connections: int, concurrency: int
) -> Timed:
    """``EmailSink.deliver`` from ``concurrency`` tasks; its pool opened before the clock."""
    sink = email_sink(receivers.port, connections, concurrency)
    async with trio_asyncio.open_loop(), sink.open():
        await _workers(connections, sink.deliver, notes[:connections])  # open the pool
        clock = _Clock(receivers)
        await _workers(concurrency, sink.deliver, notes)
        return clock.stop(len(notes))


# -------------------------------------------------------------------------------------------------
# webhooks/s
# -------------------------------------------------------------------------------------------------


def webhook_notes(n: int, url: str) -> list[Notification]:
    destination = Destination(1, 1, "webhook", url, secret=SECRET)
    return [
        Notification(i, i, "webhook", fire_data(i), destination=destination)
        for i in range(1, n + 1)
    ]


async def bare_webhooks(receivers: Receivers, notes: list[Notification], concurrency: int) -> Timed:
    """The naive baseline: a plain ``httpx.AsyncClient`` posting bodies signed beforehand."""
    key = secret_key(SECRET)
    now = int(time.time())
    requests = [(encode_body(n), sign(key, n.message_id(), now, encode_body(n))) for n in notes]
    url = notes[0].destination.target if notes[0].destination else ""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def post(request: tuple[bytes, dict[str, str]]) -> None:
            response = await client.post(url, content=request[0], headers=request[1])
            response.raise_for_status()

        await _workers(concurrency, post, requests[:concurrency])
        clock = _Clock(receivers)
        await _workers(concurrency, post, requests)
        return clock.stop(len(requests))


async def sink_webhooks(receivers: Receivers, notes: list[Notification], concurrency: int) -> Timed:
    """``WebhookSink.deliver`` (body, signature, guarded transport) from ``concurrency`` tasks."""
    sink = WebhookSink({"allow_private": True, "concurrency": concurrency})
    async with sink.open():
        await _workers(concurrency, sink.deliver, notes[:concurrency])
        clock = _Clock(receivers)
        await _workers(concurrency, sink.deliver, notes)
        return clock.stop(len(notes))


# -------------------------------------------------------------------------------------------------
# fire-commit-to-delivered, and the feed while mail drains
# -------------------------------------------------------------------------------------------------


class _Stamps:
    """When each alert's notification was delivered (``perf_counter``), and a wait for a count."""

    def __init__(self) -> None:
        self.at: dict[int, float] = {}
        self._want = 0
        self._reached = trio.Event()

    def add(self, alert_id: int) -> None:
        self.at[alert_id] = time.perf_counter()
        if len(self.at) >= self._want:
            self._reached.set()

    async def wait_for(self, count: int) -> None:
        self._want = count
        if len(self.at) < count:
            self._reached = trio.Event()
            await self._reached.wait()


class _Stamped:
    """Mixed in before a sink: notes when each ``deliver`` of that sink returned."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)  # the sink's own __init__
        self.stamps = _Stamps()

    async def deliver(self, note: Notification) -> None:
        await super().deliver(note)  # the sink's own deliver
        self.stamps.add(note.alert_id)


class StampedConsole(_Stamped, ConsoleSink):
    """The console sink, noting when each ``deliver`` returned."""


class StampedWebhook(_Stamped, WebhookSink):
    """The webhook sink, noting when each ``deliver`` returned."""


class StampedEmail(_Stamped, EmailSink):
    """The email sink, noting when each ``deliver`` returned."""


class _CommitClock:
    """The store as the recorder sees it, noting when each fired alert's commit returned."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.at: dict[int, float] = {}

    async def record_fires(self, fires: Sequence[Fire], channels: Any) -> list[int]:
        marked = await self._store.record_fires(fires, channels)
        now = time.perf_counter()
        for alert_id in marked:
            self.at[alert_id] = now
        return marked


def _fires(triggers: Sequence[Trigger]) -> Iterator[Fire]:
    for trigger in triggers:
        tick = Tick(trigger.exchange, trigger.symbol, trigger.target)
        yield Fire(tick, (trigger,), fired_at_ms=time.time_ns() // 1_000_000)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(values: list[float], q: float) -> float:
    return round(1e3 * _quantile(values, q), 2)


async def _add_alerts(store: Store, owner_id: int, n: int) -> list[Trigger]:
    """``n`` fresh ``created`` alerts of ``owner_id``, as triggers (ascending ids)."""
    before = {t.id for t in await store.load_live_triggers()}

    async def copy(con: Any) -> None:
        await con.copy_records_to_table(
            "alerts",
            records=(
                (owner_id, "binance", "BTCUSDT", Decimal(1000 + i % 5000), "above")
                for i in range(n)
            ),
            columns=["owner_id", "exchange", "symbol", "target_price", "direction"],
        )

    await store.bridge.run(copy)
    return sorted(
        (t for t in await store.load_live_triggers() if t.id not in before), key=lambda t: t.id
    )


async def _latencies(store: Store, url: str, idle: int, burst: int) -> dict[str, Any]:
    """Console and webhook, fire-commit-to-delivered, idle then in a burst."""
    owner = await store.create_user("ada", RECIPIENT, "h")
    await store.bridge.run(
        lambda con: con.execute(
            "INSERT INTO destinations (owner_id, kind, target, secret, confirmed_at) "
            "VALUES ($1, 'webhook', $2, $3, now())",
            owner.id,
            url,
            SECRET,
        )
    )
    console, webhook = StampedConsole(), StampedWebhook({"allow_private": True})
    metrics = Metrics()
    delivery = Delivery({"console": console, "webhook": webhook}, store.outbox, metrics)
    clock = _CommitClock(store)
    idle_triggers = await _add_alerts(store, owner.id, idle)
    burst_triggers = await _add_alerts(store, owner.id, burst)
    results: dict[str, Any] = {"idle_fires": idle, "burst_fires": burst}
    send, receive = trio.open_memory_channel[Fire](burst + 16)
    async with trio.open_nursery() as nursery:
        await nursery.start(delivery.run)
        await nursery.start(
            lambda task_status: run_fire_recorder(
                cast(Store, clock),
                receive,
                delivery.fire_channels(),
                metrics,
                Quarantine(metrics),
                committed=delivery.wake,
                task_status=task_status,
            )
        )
        for n, fire in enumerate(_fires(idle_triggers), 1):
            await trio.sleep(IDLE_PAUSE_S)  # idle: the loops are back asleep
            send.send_nowait(fire)
            await console.stamps.wait_for(n)
            await webhook.stamps.wait_for(n)
        await trio.sleep(0.2)
        fires = list(_fires(burst_triggers))
        start = time.perf_counter()
        for fire in fires:  # one tick firing them all: the recorder takes them in batches
            send.send_nowait(fire)
        for sink in (console, webhook):
            await sink.stamps.wait_for(idle + burst)
            name = sink.name
            results[f"{name}_burst_per_s"] = round(
                burst / (max(sink.stamps.at[t.id] for t in burst_triggers) - start)
            )
        nursery.cancel_scope.cancel()
    for sink in (console, webhook):
        for label, triggers in (("idle", idle_triggers), ("burst", burst_triggers)):
            lat = [sink.stamps.at[t.id] - clock.at[t.id] for t in triggers]
            results[f"{sink.name}_{label}_p50_ms"] = _ms(lat, 0.5)
            results[f"{sink.name}_{label}_p99_ms"] = _ms(lat, 0.99)
    return results


async def _feed_rounds(
    url: str,
    triggers: list[Trigger],
    frames: int,
    rounds: int,
    left: Callable[[], int] = lambda: 0,
) -> list[tuple[feed.Timed, feed.Timed, int]]:
    """``rounds`` of (bare run, feed run, mails still queued after it), as ``bench feed``
    times them."""
    out = []
    for _ in range(rounds):
        bare = await feed.bare_receive(url, frames)
        path = await feed.whole_path(url, triggers)
        out.append((bare, path, left()))
    return out


def _feed_figures(label: str, rounds: list[tuple], frames: int) -> dict[str, Any]:
    n = frames - 1
    ratios = [bare.wall_s / path.wall_s for bare, path, _ in rounds]
    latencies = [x for _, path, _ in rounds for x in path.latencies_us]
    return {
        f"feed_frames_per_s_{label}": round(statistics.median(n / p.wall_s for _, p, _ in rounds)),
        f"feed_ratio_{label}": round(statistics.median(ratios), 3),
        f"feed_ratio_{label}_all": [round(r, 3) for r in ratios],
        f"feed_tick_to_fire_p50_us_{label}": round(_quantile(latencies, 0.5), 1),
        f"feed_tick_to_fire_p99_us_{label}": round(_quantile(latencies, 0.99), 1),
    }


async def _feed_under_backlog(
    store: Store, smtp_port: int, backlog: int, frames: int, rounds: int
) -> dict[str, Any]:
    """``bench feed``'s ratio with no delivery running, then while ``backlog`` mails drain.
    Only busy rounds that ended with mails still queued count (the drain ran throughout)."""
    owner = await store.create_user("bob", "bob@bench.example", "h")
    triggers = await _add_alerts(store, owner.id, backlog)
    for i in range(0, len(triggers), 4096):
        batch = list(_fires(triggers[i : i + 4096]))
        await store.record_fires(batch, ["email"])
    book_triggers = feed.bench_triggers(2000)
    results: dict[str, Any] = {"backlog_mails": backlog, "feed_frames": frames}
    with feed.Server("trades", frames) as server:
        idle = await _feed_rounds(server.url, book_triggers, frames, rounds)
        results |= _feed_figures("idle", idle, frames)
        sink = StampedEmail(
            {"host": HOST, "port": smtp_port, "sender": SENDER, "helo_name": "bench"}
        )
        delivery = Delivery({"email": sink}, store.outbox, Metrics())
        async with trio.open_nursery() as nursery:
            start = time.perf_counter()
            await nursery.start(delivery.run)
            busy = await _feed_rounds(
                server.url, book_triggers, frames, rounds, lambda: backlog - len(sink.stamps.at)
            )
            under = [r for r in busy if r[2] > 0] or busy
            results |= _feed_figures("busy", under, frames)
            results["feed_busy_rounds_under_drain"] = sum(1 for r in busy if r[2] > 0)
            results["feed_backlog_left"] = busy[-1][2]
            await sink.stamps.wait_for(backlog)
            results["backlog_mails_per_s"] = round(backlog / (max(sink.stamps.at.values()) - start))
            nursery.cancel_scope.cancel()
    return results


class _Formatted(logging.Handler):
    """Formats each console line, as a real handler would, and writes it nowhere."""

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


async def _with_store(
    url: str, smtp_port: int, idle: int, burst: int, backlog: int, frames: int, rounds: int
) -> dict[str, Any]:
    parent = Path(tempfile.mkdtemp(prefix="triggerbook-bench-"))
    console_log = logging.getLogger("triggerbook.console")
    handler = _Formatted()
    console_log.addHandler(handler)
    console_log.setLevel(logging.INFO)
    console_log.propagate = False
    try:
        config = DatabaseConfig(url="", data_dir=(parent / "pg").resolve())
        async with trio_asyncio.open_loop(), open_store(config) as store:
            results = await _latencies(store, url, idle, burst)
            if backlog:
                results |= await _feed_under_backlog(store, smtp_port, backlog, frames, rounds)
            return results
    finally:
        console_log.removeHandler(handler)
        console_log.propagate = True
        shutil.rmtree(parent, ignore_errors=True)


# -------------------------------------------------------------------------------------------------
# the run
# -------------------------------------------------------------------------------------------------


def _summary(prefix: str, bare: list[Timed], sink: list[Timed]) -> dict[str, Any]:
    med = statistics.median
    return {
        f"{prefix}_bare_per_s": round(med(t.rate for t in bare)),
        f"{prefix}_sink_per_s": round(med(t.rate for t in sink)),
        f"{prefix}_ratio": round(med(s.rate / b.rate for b, s in zip(bare, sink, strict=True)), 3),
        f"{prefix}_bare_cpu_us": round(med(t.cpu_us for t in bare), 1),
        f"{prefix}_sink_cpu_us": round(med(t.cpu_us for t in sink), 1),
        f"{prefix}_bare_receiver_load": round(med(t.receiver_load for t in bare), 2),
        f"{prefix}_sink_receiver_load": round(med(t.receiver_load for t in sink), 2),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement, as a flat dict."""
    results: dict[str, Any] = {
        "connections": args.connections,
        "concurrency": args.concurrency,
        "smtp_receivers": args.smtp_receivers,
        "repeats": args.repeats,
    }
    # httpx logs every request at INFO (the CLI's level): the bare client's and the sink's
    # alike, so it would only add the same stderr write to both sides.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with Receivers("smtp", args.smtp_receivers) as smtp, Receivers("http") as http:
        if args.mails:
            notes = mail_notes(args.mails)
            bare, sink = [], []
            for _ in range(args.repeats):
                bare.append(bare_mail(smtp, notes))
                sink.append(trio.run(sink_mail, smtp, notes, args.connections, args.concurrency))
            results |= {"mails": args.mails} | _summary("mail", bare, sink)
        url = f"http://{HOST}:{http.port}/hook"
        if args.webhooks:
            notes = webhook_notes(args.webhooks, url)
            bare, sink = [], []
            for _ in range(args.repeats):
                bare.append(trio.run(bare_webhooks, http, notes, args.concurrency))
                sink.append(trio.run(sink_webhooks, http, notes, args.concurrency))
            results |= {"webhooks": args.webhooks} | _summary("webhook", bare, sink)
        if args.idle or args.burst:
            results |= trio.run(
                _with_store,
                url,
                smtp.port,
                args.idle,
                args.burst,
                args.backlog,
                args.frames,
                args.feed_rounds,
            )
    results["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``triggerbook bench sinks``: prints a table, or ``{"results": {...}}`` with ``--json``."""
    parser = argparse.ArgumentParser(
        prog="triggerbook bench sinks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mails", type=int, default=3000, help="mails per timed run")
    parser.add_argument("--webhooks", type=int, default=3000, help="webhooks per timed run")
    parser.add_argument("--connections", type=int, default=4, help="the email sink's pool")
    parser.add_argument("--concurrency", type=int, default=8, help="callers of deliver")
    parser.add_argument("--smtp-receivers", type=int, default=1, help="aiosmtpd processes")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved bare/sink runs")
    parser.add_argument("--idle", type=int, default=200, help="fires sent one at a time")
    parser.add_argument("--burst", type=int, default=10_000, help="fires queued at once")
    parser.add_argument("--backlog", type=int, default=10_000, help="mails queued for the feed")
    parser.add_argument("--frames", type=int, default=20_000, help="frames per feed run")
    parser.add_argument("--feed-rounds", type=int, default=3, help="bare/feed pairs per state")
    parser.add_argument("--json", action="store_true", help='print {"results": {...}}')
    args = parser.parse_args(argv)
    results = run(args)
    if args.json:
        print(json.dumps({"results": results}))
    else:
        for key, value in results.items():
            print(f"{key:<32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
