"""The write-through store: Postgres through asyncpg on Trio, embedded by default.

``open_store(config)`` yields a :class:`Store`; ``run_fire_recorder`` is the actor that commits
the book's fires in batches. See ``docs/internals.md`` for the contract.
"""

from __future__ import annotations

from engine.store.recorder import run_fire_recorder
from engine.store.store import Refusal, Store, open_store

__all__ = ["Refusal", "Store", "open_store", "run_fire_recorder"]
