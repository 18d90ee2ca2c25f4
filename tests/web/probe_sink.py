"""A sink plugin of the web tests: ``probe``, whose destinations say how delivery goes.

Registered with ``start_api(..., extra_plugins=(probe_sink,))`` and enabled with
``TRIGGERBOOK_SINKS_PROBE_ENABLED=true``. A target is ``probe:<outcome>[?secret=...]``:
``probe:ok`` is delivered, ``probe:fail`` fails (would be retried), ``probe:refuse`` is
refused (would be dead). The secret in a target is what ``mask_target`` hides. Every
notification delivered is kept in :data:`DELIVERED`.
"""

from __future__ import annotations

from typing import ClassVar

from engine.errors import DeliveryFailed, DeliveryRefused
from engine.model import Notification
from engine.plugins import Sink, hookimpl

DELIVERED: list[Notification] = []


class ProbeSink(Sink):
    name = "probe"
    takes_destinations: ClassVar[bool] = True

    def check_target(self, target: str) -> str:
        if not target.startswith("probe:"):
            raise ValueError("a probe target starts with probe:")
        return target

    def mask_target(self, target: str) -> str:
        head, sep, _secret = target.partition("?secret=")
        return f"{head}{sep}***" if sep else target

    async def deliver(self, note: Notification) -> None:
        assert note.destination is not None
        outcome = note.destination.target.split("?", 1)[0].removeprefix("probe:")
        if outcome == "fail":
            raise DeliveryFailed("the probe failed, as asked")
        if outcome == "refuse":
            raise DeliveryRefused("the probe refused, as asked")
        DELIVERED.append(note)


class FakeEmailSink(ProbeSink):
    """Stands in for the email sink where it is not installed: delivers every note."""

    name = "email"
    reaches_account: ClassVar[bool] = True

    def check_target(self, target: str) -> str:
        if "@" not in target:
            raise ValueError("not an address")
        return target

    async def deliver(self, note: Notification) -> None:
        DELIVERED.append(note)


@hookimpl
def triggerbook_sinks() -> list[type[Sink]]:
    return [ProbeSink]


class FakeEmail:
    """A second plugin object: the fake email sink."""

    @hookimpl
    def triggerbook_sinks(self) -> list[type[Sink]]:
        return [FakeEmailSink]
