"""Crashes: ``kill -9`` of the process that owns the embedded server, of the server itself, and
a ``postmaster.pid`` that lies. The next start copes and every committed row is still there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from engine.config import DatabaseConfig
from engine.model import AlertStatus
from engine.store import Store, embedded, open_store

CHILD = Path(__file__).with_name("crash_child.py")
ALERTS = 25


@pytest.fixture
def data_dir(pg_dir: Path) -> Path:
    return pg_dir


async def _child_until_ready(data_dir: Path) -> trio.Process:
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(CHILD), str(data_dir), str(ALERTS)], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    seen = b""
    while b"ready\n" not in seen:
        chunk = await proc.stdout.receive_some()
        if not chunk:
            raise AssertionError(f"the child exited early ({await proc.wait()})")
        seen += chunk
    return proc


async def _kill(proc: trio.Process) -> None:
    proc.send_signal(signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL


async def _assert_everything_kept(store: Store) -> None:
    user = await store.get_user_by_username("crash")
    assert user is not None
    count, alerts = await store.list_alerts(user.id, limit=100)
    assert count == ALERTS
    statuses = sorted(a.status for a in alerts)
    assert statuses.count(AlertStatus.TRIGGERED) == 1
    assert len(await store.load_live_triggers()) == ALERTS - 1
    assert len(await store.pending_outbox()) == 1


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


async def test_kill_9_of_the_owner_then_a_new_start_adopts_the_server(
    data_dir: Path, aio_loop: object
) -> None:
    with trio.fail_after(60):
        await _kill(await _child_until_ready(data_dir))
        orphan = _postmaster_pid(data_dir)
        async with open_store(DatabaseConfig(url="", data_dir=data_dir)) as store:
            assert _postmaster_pid(data_dir) == orphan  # adopted, not restarted
            await _assert_everything_kept(store)
    # the dead owner's handle was pruned, so ours was the last one and the server stopped
    assert embedded.postgres_processes(data_dir) == []


async def test_kill_9_of_owner_and_server_leaves_a_stale_pid_file_that_is_coped_with(
    data_dir: Path, aio_loop: object
) -> None:
    with trio.fail_after(60):
        await _kill(await _child_until_ready(data_dir))
        os.kill(_postmaster_pid(data_dir), signal.SIGKILL)
        assert (data_dir / "postmaster.pid").exists()
        async with open_store(DatabaseConfig(url="", data_dir=data_dir)) as store:
            await _assert_everything_kept(store)
    assert embedded.postgres_processes(data_dir) == []


@pytest.mark.parametrize("lie", ["a live stranger", "a torn file"])
async def test_a_pid_file_that_lies_is_removed(data_dir: Path, aio_loop: object, lie: str) -> None:
    with trio.fail_after(60):
        await _kill(await _child_until_ready(data_dir))
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        async with open_store(DatabaseConfig(url="", data_dir=data_dir)):
            pass  # a clean stop: no server, no pid file
        assert not (data_dir / "postmaster.pid").exists()
        if lie == "a live stranger":  # e.g. after a reboot the pid belongs to someone else
            text = "\n".join([str(os.getpid()), *lines[1:]]) + "\n"
        else:
            text = "12"
        (data_dir / "postmaster.pid").write_text(text)
        async with open_store(DatabaseConfig(url="", data_dir=data_dir)) as store:
            await _assert_everything_kept(store)
    assert embedded.postgres_processes(data_dir) == []
