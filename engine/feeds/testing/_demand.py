"""A demand set by hand, and the ``manual_demand`` fixture the pytest plugin provides.

The fixture is made without pytest when pytest is not installed: the kit's run-time parts (the
exchange servers, ``triggerbook plugins serve``) import this package in production.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from engine.book.actor import Demand


class ManualDemand(Demand):
    """The engine's real :class:`~engine.book.actor.Demand`, set by hand from any iterable:
    ``set(exchange, ["BTCUSDT"])`` (the book actor sets it from its triggers in the engine)."""

    def set(self, exchange: str, symbols: Iterable[str]) -> None:
        """Make ``symbols`` the live set of ``exchange`` and wake the feed if it changed."""
        super().set(exchange, frozenset(symbols))


def _fixture(function: Callable[[], ManualDemand]) -> Callable[[], ManualDemand]:
    """``pytest.fixture(function)`` when pytest is importable, else ``function`` itself: pytest is
    a test-time dependency, and the kit's run-time parts (the exchange server, the checks) must
    import without it."""
    try:
        import pytest
    except ModuleNotFoundError:
        return function
    return pytest.fixture(function)


@_fixture
def manual_demand() -> ManualDemand:
    """A :class:`ManualDemand` for driving a feed's subscriptions in a test."""
    return ManualDemand()
