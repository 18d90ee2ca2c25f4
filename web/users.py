"""``triggerbook users create USERNAME --email E [--password P] [--staff] [--config F]``.

The one way to make a staff account. The password is read from stdin when not given (a
terminal prompt when stdin is a terminal), so it need not appear in the shell history. The same
rules as registering through the API apply (username, email, password length).
"""

from __future__ import annotations

import argparse
import getpass
import sys

import trio
import trio_asyncio

from engine.errors import Conflict, ValidationFailed
from engine.model import User
from web import validation as v
from web.auth import PasswordHasher


def _read_password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    return sys.stdin.readline().rstrip("\r\n")


async def _create(
    args: argparse.Namespace, username: str, email: str, password: str
) -> User | Conflict:
    """The new user, or the :class:`Conflict` (returned: inside the loop's nursery a raise
    would reach the caller wrapped in an exception group)."""
    from engine.plugins.registry import load_registry
    from engine.store import open_store

    config = load_registry().load_config(args.config)
    digest = await PasswordHasher().hash(password)
    async with trio_asyncio.open_loop(), open_store(config.database) as store:
        try:
            return await store.create_user(username, email, digest, is_staff=bool(args.staff))
        except Conflict as exc:
            return exc


def create_user_command(args: argparse.Namespace) -> int:
    """Create the account; 0 on success, 1 when the input is invalid or the name is taken.

    Configuration and database errors propagate (``engine.cli`` prints them and exits 2).
    """
    password = args.password if args.password is not None else _read_password()
    try:
        username = v.USERNAME.clean(args.username, "username")
        email = v.EMAIL.clean(args.email, "email")
        password = v.PASSWORD.clean(password, "password")
    except ValidationFailed as exc:
        print(f"triggerbook: {exc.detail}", file=sys.stderr)
        return 1
    user = trio.run(_create, args, username, email, password)
    if isinstance(user, Conflict):
        print(f"triggerbook: {user}", file=sys.stderr)
        return 1
    kind = "staff user" if user.is_staff else "user"
    print(f"created {kind} {user.username} (id {user.id})")
    return 0
