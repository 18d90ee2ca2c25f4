"""Operations: liveness, readiness, Prometheus metrics and the OpenAPI document.

None of these need a token: a load balancer and a Prometheus scraper hold none. ``/readyz``
is 503 problem+json with the reason for each check that fails (the database does not answer
within ``READY_TIMEOUT_S``, an enabled feed with symbols to watch is not connected). Either way
``checks.quarantine`` counts what the engine set aside as unusable, with the latest entries, and
``checks.channels`` says which notification channels are down and why.
"""

from __future__ import annotations

from typing import Any

import trio
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from quart import Response

from engine.errors import StoreUnavailable
from web.context import State
from web.http import json_response
from web.problems import NOT_READY, problem
from web.spec import Route, ok, problems, ref

READY_TIMEOUT_S = 2.0


async def healthz(state: State, user_id: None) -> Response:
    return json_response(state, {"status": "ok"})


async def _database_reason(state: State) -> str | None:
    try:
        with trio.fail_after(READY_TIMEOUT_S):
            await state.ctx.store.ping()
    except StoreUnavailable as exc:
        return f"unreachable: {exc}"
    except trio.TooSlowError:
        return f"no answer within {READY_TIMEOUT_S:g} s"
    return None


async def readyz(state: State, user_id: None) -> Response:
    """200 when the database answers and every enabled feed is ready; else 503 with reasons."""
    checks: dict[str, Any] = {}
    reasons: list[str] = []
    db_reason = await _database_reason(state)
    checks["database"] = {"ok": db_reason is None, "reason": db_reason}
    if db_reason is not None:
        reasons.append(f"database {db_reason}")
    states = state.ctx.feed_states
    feeds: dict[str, Any] = {}
    for name in state.ctx.config.enabled_feeds():
        if name not in states:
            feeds[name] = {"ok": False, "reason": "not started"}
            reasons.append(f"feed {name} not started")
            continue
        feed = states.get(name)
        reason = feed.ready_reason()
        feeds[name] = {"ok": reason is None, "reason": reason, **feed.as_dict()}
        if reason is not None:
            reasons.append(f"feed {name} {reason}")
    checks["feeds"] = feeds
    # The enabled sinks' channels, each down one with why (a mail server refusing the login):
    # shown, not a reason to leave the load balancer, since the API and the matching still work
    # and the notifications wait in the outbox until the channel is back.
    down = state.ctx.delivery.problems()
    checks["channels"] = {
        name: {"ok": name not in down, "reason": down.get(name)}
        for name in sorted(state.ctx.delivery.sinks)
    }
    # What the engine set aside instead of crashing (engine/quarantine.py): shown, not a reason
    # to leave the load balancer, since everything else still works.
    checks["quarantine"] = state.ctx.quarantine.summary()
    if reasons:
        return problem(NOT_READY, "; ".join(reasons), extra={"checks": checks})
    return json_response(state, {"status": "ready", "checks": checks})


async def metrics(state: State, user_id: None) -> Response:
    """The engine's own registry in prometheus_client's text format 0.0.4 (engine/metrics.py):
    the library's default exposition, and the type it pairs with it when no format is asked."""
    text = generate_latest(state.ctx.metrics.registry)
    return Response(text, content_type=CONTENT_TYPE_PLAIN_0_0_4)


async def openapi(state: State, user_id: None) -> Response:
    return Response(state.openapi, content_type="application/json")


def routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/healthz",
            "/healthz",
            healthz,
            "Liveness",
            auth=False,
            tag="ops",
            responses=ok(200, "the process serves requests", ref("Health")),
        ),
        Route(
            "GET",
            "/readyz",
            "/readyz",
            readyz,
            "Readiness: database and feeds",
            auth=False,
            tag="ops",
            responses={**ok(200, "ready", ref("Ready")), **problems(503)},
        ),
        Route(
            "GET",
            "/metrics",
            "/metrics",
            metrics,
            "Prometheus metrics (text format 0.0.4)",
            auth=False,
            tag="ops",
            responses=ok(200, "metrics", {"type": "string"}, "text/plain"),
        ),
        Route(
            "GET",
            "/openapi.json",
            "/openapi.json",
            openapi,
            "This document",
            auth=False,
            tag="ops",
            responses=ok(200, "the OpenAPI 3.1 document", {"type": "object"}),
        ),
    ]
