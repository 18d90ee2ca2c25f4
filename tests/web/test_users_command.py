"""``triggerbook users create``: the one way to make a staff account."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
import trio
import trio_asyncio

from engine.config import DatabaseConfig
from engine.store import open_store, queries
from web.auth import PasswordHasher
from web.users import create_user_command


def _args(config: Path, username: str, **extra: object) -> argparse.Namespace:
    values = {"email": f"{username}@example.com", "password": None, "staff": False}
    values.update(extra)
    return argparse.Namespace(username=username, config=str(config), **values)


async def _user(url: str, username: str) -> object:
    config = DatabaseConfig(url=url, data_dir=Path("unused"), start_timeout_s=5.0)
    async with trio_asyncio.open_loop(), open_store(config, pool_size=1) as store:
        return await store.get_user_by_username(username)


async def _truncate(url: str) -> None:
    config = DatabaseConfig(url=url, data_dir=Path("unused"), start_timeout_s=5.0)
    async with trio_asyncio.open_loop(), open_store(config, pool_size=1) as store:
        await store.bridge.run(queries.truncate_all)


def test_create_staff_user_from_stdin(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    trio.run(_truncate, pg_url)
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{pg_url}"\n')
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert create_user_command(_args(config, "root", staff=True)) == 0
    assert "created staff user root" in capsys.readouterr().out
    user = trio.run(_user, pg_url, "root")
    assert user is not None and user.is_staff  # type: ignore[attr-defined]
    hashed = user.password_hash  # type: ignore[attr-defined]
    assert trio.run(PasswordHasher(rounds=4).check, "a long password", hashed)
    # the name is taken, whatever its case
    assert create_user_command(_args(config, "ROOT", password="another password")) == 1
    assert "taken" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("username", "extra"),
    [("x", {}), ("someone", {"email": "nope"}), ("someone", {"password": "short"})],
)
def test_invalid_input_creates_nothing(
    tmp_path: Path, username: str, extra: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    args = _args(config, username, **{"password": "a long password", **extra})
    assert create_user_command(args) == 1
    assert capsys.readouterr().err.startswith("triggerbook: ")
