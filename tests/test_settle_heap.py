"""engine.app.settle_heap: what the engine does to the cyclic collector once its book is loaded."""

from __future__ import annotations

import gc

from engine.app import GC_THRESHOLDS, settle_heap


def test_settle_heap_freezes_what_exists_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    marker = [object()]  # a tracked object that exists before the freeze
    try:
        settle_heap()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
        assert not any(o is marker for o in gc.get_objects())  # frozen: no collection walks it
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
