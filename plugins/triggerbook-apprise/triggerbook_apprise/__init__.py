"""triggerbook-apprise: chat and push notifications (Telegram, Slack, Discord, ntfy and 150+
more services) through Apprise, as the sink ``chat``.

Installed, it registers :class:`ChatSink` through the ``triggerbook`` entry point; enable it
with ``[sinks.chat] enabled = true``, then users add destinations of kind ``chat`` whose target
is one Apprise URL. See :mod:`triggerbook_apprise.sink`.
"""

from __future__ import annotations

from engine.plugins import Sink, hookimpl
from triggerbook_apprise.sink import ChatSink

__all__ = ["ChatSink", "triggerbook_sinks"]


@hookimpl
def triggerbook_sinks() -> list[type[Sink]]:
    return [ChatSink]
