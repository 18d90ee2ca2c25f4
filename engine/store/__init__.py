"""The write-through store: Postgres through asyncpg on Trio, embedded by default.

``open_store(config)`` yields a :class:`Store`; ``run_fire_recorder`` is the actor that commits
the book's fires in batches; a :class:`FireJournal` keeps those it cannot commit yet, and
``replay`` records them at the next start. See ``docs/internals.md`` for the contract.
"""

from __future__ import annotations

from engine.store.journal import FireJournal, replay
from engine.store.recorder import run_fire_recorder
from engine.store.store import Refusal, Store, open_store

__all__ = ["FireJournal", "Refusal", "Store", "open_store", "replay", "run_fire_recorder"]
