"""engine/backoff.py: the one retry backoff, one test per property, driven by a seeded random.

``BackoffSpy`` / ``spy_on`` are shared with the callers' tests (the feed runner, the recorder,
the store bridge, the symbol directory), which check that each of them waits with this backoff
and with its own numbers.
"""

from __future__ import annotations

import math
import random
import types
from typing import Any

import pytest
import trio
import trio.testing

from engine.backoff import Backoff


class BackoffSpy:
    """What a module's retry loops did with :class:`Backoff`: each one made, each delay drawn."""

    def __init__(self) -> None:
        self.made: list[Backoff] = []
        self.delays: list[float] = []


def spy_on(monkeypatch: pytest.MonkeyPatch, module: types.ModuleType) -> BackoffSpy:
    """Replace ``module.Backoff`` by a subclass that records into the returned spy (it still
    draws its delays exactly as :class:`Backoff` does)."""
    spy = BackoffSpy()

    class Recording(Backoff):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            spy.made.append(self)

        def next_delay(self) -> float:
            delay = super().next_delay()
            spy.delays.append(delay)
            return delay

    assert module.Backoff is Backoff, f"{module.__name__} does not use engine.backoff.Backoff"
    monkeypatch.setattr(module, "Backoff", Recording)
    return spy


def ceilings(base: float, cap: float, n: int) -> list[float]:
    return [min(cap, base * 2**k) for k in range(n)]


def test_every_delay_is_drawn_from_zero_to_its_ceiling() -> None:
    backoff = Backoff(0.5, 4.0, rng=random.Random(1))
    for ceiling in ceilings(0.5, 4.0, 200):
        assert backoff.ceiling() == ceiling
        assert 0.0 <= backoff.next_delay() <= ceiling


def test_the_jitter_is_full_it_covers_the_whole_window() -> None:
    # Full jitter, not "half the ceiling plus jitter": delays reach down near 0 and up near the
    # ceiling, spread evenly (the mean of uniform(0, c) is c / 2).
    rng = random.Random(2)
    draws = []
    for _ in range(2000):
        backoff = Backoff(1.0, 1.0, rng=rng)
        draws.append(backoff.next_delay())
    assert min(draws) < 0.01 and max(draws) > 0.99
    assert sum(draws) / len(draws) == pytest.approx(0.5, abs=0.03)
    assert sum(d < 0.5 for d in draws) == pytest.approx(1000, abs=100)


def test_the_ceiling_doubles_per_failure_from_the_base() -> None:
    backoff = Backoff(0.05, 1e9, rng=random.Random(3))
    seen = []
    for attempt in range(20):
        assert backoff.attempt == attempt
        seen.append(backoff.ceiling())
        backoff.next_delay()
    assert seen == [0.05 * 2**k for k in range(20)]
    # the draws grow with it: the last few are far above the base
    grown = Backoff(0.05, 1e9, rng=random.Random(3))
    delays = [grown.next_delay() for _ in range(20)]
    assert max(delays[-3:]) > 1000 * 0.05


def test_the_cap_bounds_every_delay_for_ever() -> None:
    backoff = Backoff(0.1, 5.0, rng=random.Random(4))
    delays = [backoff.next_delay() for _ in range(10_000)]  # the exponent is bounded, no overflow
    assert max(delays) <= 5.0
    assert max(delays[-100:]) > 4.5  # it does reach towards the cap
    assert backoff.ceiling() == 5.0


def test_a_cap_below_the_base_wins() -> None:
    # The symbol directory caps by the refresh period, which may be shorter than its base.
    backoff = Backoff(5.0, 2.0, rng=random.Random(5))
    assert all(0 <= backoff.next_delay() <= 2.0 for _ in range(100))


def test_a_healthy_success_resets_and_a_short_one_does_not() -> None:
    backoff = Backoff(0.5, 30.0, healthy_after_s=30.0, rng=random.Random(6))
    for _ in range(5):
        backoff.next_delay()
    backoff.succeeded(29.9)  # up, but dropped before it proved itself: the wait keeps growing
    assert backoff.attempt == 5 and backoff.ceiling() == 16.0
    backoff.succeeded(30.0)
    assert backoff.attempt == 0 and backoff.ceiling() == 0.5
    assert backoff.next_delay() <= 0.5


def test_without_a_healthy_period_every_success_resets() -> None:
    backoff = Backoff(0.05, 5.0, rng=random.Random(7))
    for _ in range(8):
        backoff.next_delay()
    backoff.succeeded()
    assert backoff.attempt == 0
    backoff.next_delay()
    backoff.succeeded(0.0)
    assert backoff.attempt == 0


def test_the_same_seed_gives_the_same_delays() -> None:
    first = Backoff(0.5, 30.0, rng=random.Random(8))
    second = Backoff(0.5, 30.0, rng=random.Random(8))
    assert [first.next_delay() for _ in range(12)] == [second.next_delay() for _ in range(12)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_s": -1.0, "cap_s": 1.0},
        {"base_s": 1.0, "cap_s": -0.1},
        {"base_s": math.inf, "cap_s": 1.0},
        {"base_s": 1.0, "cap_s": math.nan},
        {"base_s": 1.0, "cap_s": 1.0, "healthy_after_s": -1.0},
    ],
)
def test_nonsense_numbers_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)


async def test_a_retry_loop_waits_no_longer_than_the_ceilings(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The way every caller uses it: draw, (log,) sleep, try again.
    backoff = Backoff(0.5, 30.0, rng=random.Random(9))
    with trio.fail_after(600):
        start = trio.current_time()
        slept = 0.0
        for _ in range(10):
            delay = backoff.next_delay()
            slept += delay
            await trio.sleep(delay)
    elapsed = trio.current_time() - start
    assert elapsed == pytest.approx(slept)
    assert elapsed <= sum(ceilings(0.5, 30.0, 10))


def test_delay_after_draws_from_a_count_kept_elsewhere_without_counting() -> None:
    rng = random.Random(7)
    backoff = Backoff(5.0, 60.0, rng=rng)
    ceilings = [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    for failures, ceiling in enumerate(ceilings, start=1):
        draws = [backoff.delay_after(failures) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.9  # the whole window, not a fixed point
    assert backoff.attempt == 0
    assert 0.0 <= backoff.delay_after(0) <= 5.0
    assert 0.0 <= backoff.delay_after(10**9) <= 60.0
