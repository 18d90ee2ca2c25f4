"""The fire journal: fires the recorder could not commit yet, kept in a local file.

While the database is away, a fire popped from the book lives only in the fire recorder's
memory; a ``kill -9`` then would lose it (its alert stays ``created`` and fires again only on a
new crossing: issue 15, finding 6). So the recorder appends each fire it fails to commit to this
file before it retries (one JSON line per fire, written and ``fsync``\\ ed in a worker thread,
never on the Trio thread), and empties the file once they are committed. At the next start,
before the book is loaded, :func:`replay` records what the file holds and empties it: a fire
seen before the crash is recorded after it, with the price and time it fired at.

Replaying is safe to repeat: ``Store.record_fires`` marks only alerts still ``created``, so a fire
committed just before the crash (the answer lost with the process) is not recorded twice, and an
alert deleted meanwhile stays deleted. A torn last line (a crash in the middle of an append) is
skipped: that fire was never ``fsync``\\ ed, so it was never promised. The file sits beside the
data dir (``<data_dir>/../fires.journal``, like the generated auth secret), so an external
database gets one too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import msgspec
import trio

from engine.config import DatabaseConfig
from engine.errors import StoreRefused
from engine.model import Fire, FireChannels
from engine.store.store import Store

log = logging.getLogger(__name__)

FILE = "fires.journal"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Fire).decode


class FireJournal:
    """Append-only file of unrecorded fires (see the module docstring). Every method runs its
    file I/O in a worker thread; ``OSError`` (a full or read-only disk) propagates."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_database(cls, config: DatabaseConfig) -> FireJournal:
        """The journal of the engine whose database is ``config``."""
        return cls(config.data_dir.expanduser().parent / FILE)

    async def append(self, fires: Sequence[Fire]) -> None:
        """Add ``fires``; returns once they are on disk (``fsync``)."""
        data = b"".join(_encode(fire) + b"\n" for fire in fires)
        if data:
            await trio.to_thread.run_sync(self._append, data)

    async def read(self) -> list[Fire]:
        """Every whole fire in the file (none when it does not exist)."""
        return await trio.to_thread.run_sync(self._read)

    async def clear(self) -> None:
        """Empty the file (durably): its fires are recorded."""
        await trio.to_thread.run_sync(self._clear)

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())

    def _read(self) -> list[Fire]:
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        fires = []
        for number, line in enumerate(lines, 1):
            try:
                fires.append(_decode(line))
            except msgspec.DecodeError:
                log.warning(
                    "%s line %d is torn (a crash while it was written): skipped", self.path, number
                )
        return fires

    def _clear(self) -> None:
        try:
            with self.path.open("r+b") as file:
                if file.seek(0, os.SEEK_END) == 0:
                    return
                file.truncate(0)
                os.fsync(file.fileno())
        except FileNotFoundError:
            return


def _once_each(fires: list[Fire]) -> list[Fire]:
    """``fires`` with each trigger in its first fire only (a batch journalled again by the
    shutdown's flush is in the file twice)."""
    seen: set[int] = set()
    unique = []
    for fire in fires:
        triggers = tuple(t for t in fire.triggers if t.id not in seen)
        seen.update(t.id for t in triggers)
        if len(triggers) == len(fire.triggers):
            unique.append(fire)
        elif triggers:
            unique.append(msgspec.structs.replace(fire, triggers=triggers))
    return unique


async def replay(journal: FireJournal, store: Store, channels: FireChannels) -> list[int]:
    """Record the fires ``journal`` holds, then empty it; the alert ids marked ``triggered``.

    Run at start, before the book is loaded (so a replayed alert is not loaded as live). A fire
    the database refuses is skipped with a warning (its alert stays ``created`` and is loaded
    again). Raises :class:`StoreUnavailable` when the database cannot be reached: the journal is
    then kept for the next start.
    """
    fires = _once_each(await journal.read())
    if not fires:
        return []
    try:
        marked = await store.record_fires(fires, channels)
    except StoreRefused:
        marked = []
        for fire in fires:
            try:
                marked += await store.record_fires([fire], channels)
            except StoreRefused as exc:
                log.warning(
                    "journalled fire of %s refused by the database (%s): skipped",
                    [t.id for t in fire.triggers],
                    exc,
                )
    await journal.clear()
    log.info("fire journal: %d fires replayed, %d alerts marked triggered", len(fires), len(marked))
    return sorted(marked)
