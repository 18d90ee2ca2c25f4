"""The plugin face (``engine.plugins``): one import for authors, pure, and the old paths still work.

Run in subprocesses so that what the test session already imported proves nothing.
"""

from __future__ import annotations

import subprocess
import sys

import engine.errors
import engine.model
import engine.plugins


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_the_face_imports_no_websocket_library() -> None:
    loaded = _run(
        "import sys, engine.plugins; print(sorted(m for m in sys.modules if 'websocket' in m))"
    )
    assert loaded == "[]"


def test_the_conformance_kit_imports_without_pytest() -> None:
    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "import engine.feeds.testing as kit\n"
        "print(callable(kit.manual_demand), callable(kit.check_parse))"
    )
    assert _run(code) == "True True"


def test_the_face_names_what_a_plugin_needs() -> None:
    assert engine.plugins.Tick is engine.model.Tick
    for error in ("BadFrame", "SubscriptionRejected", "FeedClosed", "DeliveryFailed"):
        assert getattr(engine.plugins, error) is getattr(engine.errors, error)
    assert "engine.feeds.parsing" in (engine.plugins.__doc__ or "")


def test_the_old_import_paths_are_the_same_objects() -> None:
    import engine.feeds.exchange
    import engine.feeds.registry
    import engine.feeds.source
    import engine.hookspecs
    import engine.plugins.registry
    import engine.sinks.base

    assert engine.feeds.exchange.Exchange is engine.plugins.Exchange
    assert engine.feeds.exchange.any_case is engine.plugins.any_case
    assert engine.feeds.source.FeedSource is engine.plugins.FeedSource
    assert engine.sinks.base.Sink is engine.plugins.Sink
    assert engine.hookspecs.hookimpl is engine.plugins.hookimpl
    assert engine.feeds.registry.load_registry is engine.plugins.registry.load_registry
