"""The one retry backoff: capped exponential with full jitter, reset after a healthy period.

Every loop that retries something that failed for reasons outside our control waits with a
:class:`Backoff`:

- the feed runner's reconnects (``engine/feeds/runner.py``), one per connection slot, with the
  exchange's ``backoff_base_s``, ``backoff_cap_s`` and ``healthy_after_s`` (0.5 s, 30 s, 30 s by
  default);
- the fire recorder's commits while the database is away (``engine/store/recorder.py``): 0.05 s
  up to 5 s, a fresh one per batch;
- the store bridge's connection attempts at start (``engine/store/bridge.py``): 0.1 s up to
  5 s, each pause clipped to what is left of ``start_timeout_s``;
- the symbol directory's list fetches (``engine/feeds/symbols.py``): 5 s up to the smaller of
  600 s and the exchange's refresh period, reset by a good fetch;
- the delivery loops' retries of a notification (``engine/sinks/delivery.py``): 5 s up to 6 h,
  drawn from the row's own count of attempts (:meth:`Backoff.delay_after`), since a row's
  retries outlive any one loop (and any one process).

The n-th delay (n counted from 0) is ``uniform(0, min(cap_s, base_s * 2**n))``: "full jitter"
(AWS architecture blog, "Exponential Backoff And Jitter"). Drawing from zero rather than from
half the ceiling spreads the retries of many clients that failed together (every feed slot after
a network blip, several engines after a database restart) over the whole window, so they do not
return in waves; the cap keeps a long outage from growing the wait without bound.

A retry loop that succeeded calls :meth:`Backoff.succeeded`. The next failure starts from
``base_s`` again only if the success lasted ``healthy_after_s``: a connection that opens and
drops at once (an exchange that accepts the handshake and then closes) keeps growing the wait
instead of hammering at ``base_s``. Where one success is proof enough (a commit, a fetch),
``healthy_after_s`` is 0 and every success resets.

The class is pure: no clock and no sleeping. The caller sleeps (``await trio.sleep(delay)``),
usually after logging the delay, and clips it to its own deadline when it has one; tests drive
it with a seeded ``random.Random`` and no clock at all, and its callers with trio's
``MockClock``.
"""

from __future__ import annotations

import math
import random

__all__ = ["Backoff"]

# 2**62 seconds is beyond any cap; bounding the exponent keeps the float finite for ever.
_MAX_EXPONENT = 62


class Backoff:
    """Delays for one retry loop: ``uniform(0, min(cap_s, base_s * 2**attempt))``.

    ``base_s`` is the first ceiling, ``cap_s`` the largest one (it may be below ``base_s``: then
    every delay is drawn below ``cap_s``), ``healthy_after_s`` how long a success must have
    lasted for the next failure to start from ``base_s`` again. ``rng`` defaults to the
    ``random`` module's own generator (so a backoff per call costs no seeding); tests pass a
    seeded ``random.Random``. Raises ``ValueError`` for a negative or
    non-finite ``base_s`` or ``cap_s``, or a negative ``healthy_after_s``.

    Not shared between tasks: one instance per retry loop (per feed slot, per recorder call).
    """

    __slots__ = ("_attempt", "_uniform", "base_s", "cap_s", "healthy_after_s")

    def __init__(
        self,
        base_s: float,
        cap_s: float,
        *,
        healthy_after_s: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        for name, value in (("base_s", base_s), ("cap_s", cap_s)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"backoff {name} must be finite and >= 0, not {value!r}")
        if not healthy_after_s >= 0:
            raise ValueError(f"backoff healthy_after_s must be >= 0, not {healthy_after_s!r}")
        self.base_s = base_s
        self.cap_s = cap_s
        self.healthy_after_s = healthy_after_s
        self._attempt = 0
        self._uniform = random.uniform if rng is None else rng.uniform

    @property
    def attempt(self) -> int:
        """Failures since the last reset: the exponent of the next delay's ceiling."""
        return self._attempt

    def ceiling(self) -> float:
        """The largest value the next :meth:`next_delay` can return (nothing is drawn)."""
        return min(self.cap_s, self.base_s * 2 ** min(self._attempt, _MAX_EXPONENT))

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next try, in seconds:
        drawn uniformly from ``[0, ceiling()]``, the ceiling doubling per call up to ``cap_s``."""
        ceiling = self.ceiling()
        self._attempt += 1
        return self._uniform(0.0, ceiling)

    def delay_after(self, failures: int) -> float:
        """The delay after the ``failures``-th failure (counted from 1) of something whose
        count is kept elsewhere (an outbox row's ``attempts``), without counting here."""
        exponent = min(max(failures - 1, 0), _MAX_EXPONENT)
        return self._uniform(0.0, min(self.cap_s, self.base_s * 2**exponent))

    def succeeded(self, lasted_s: float = math.inf) -> None:
        """Record a success that lasted ``lasted_s`` seconds (by default: one that needs no
        time to prove itself, a commit or a fetch). From ``healthy_after_s`` on, the next
        failure starts from ``base_s`` again; a shorter success leaves the count as it is."""
        if lasted_s >= self.healthy_after_s:
            self._attempt = 0

    def __repr__(self) -> str:
        return (
            f"Backoff(base_s={self.base_s!r}, cap_s={self.cap_s!r}, "
            f"healthy_after_s={self.healthy_after_s!r}, attempt={self._attempt})"
        )
