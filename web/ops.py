"""Operations: liveness, readiness, Prometheus metrics and the OpenAPI document.

None of these need a token: a load balancer and a Prometheus scraper hold none. ``/readyz``
is 503 problem+json with the reason for each check that fails (the database does not answer
within ``READY_TIMEOUT_S``, an enabled feed with symbols to watch is not connected). Either way
``checks.quarantine`` counts what the engine set aside as unusable, and ``checks.channels`` says
which notification channels are down and why.

The public answer is a few lines whatever the number of symbols or users: per check whether
it is ok and why not (each reason cut to ``REASON_MAX`` characters), per feed the counts of
symbols subscribed and rejected. It listed every user's symbols (1.4 MB at 150,000 symbols,
issue 15). The detail (each feed's symbols and rejections, the latest quarantine entries) is for
staff only: ``/readyz?detail=1`` with a staff user's access token (401 without a valid token,
403 for a user who is not staff).
"""

from __future__ import annotations

from typing import Any

import trio
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from quart import Response, request

from engine.errors import Forbidden, StoreUnavailable, Unauthorized, ValidationFailed
from web.auth import ACCESS, bearer_token
from web.context import State
from web.http import json_response
from web.problems import NOT_READY, problem
from web.spec import Param, Route, ok, problems, ref

READY_TIMEOUT_S = 2.0
REASON_MAX = 300  # characters of one check's reason in the public answer (an exchange's words)


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


def _cut(reason: str | None) -> str | None:
    if reason is None or len(reason) <= REASON_MAX:
        return reason
    return reason[: REASON_MAX - 1] + "\u2026"


async def _wants_detail(state: State) -> bool:
    """Whether the caller asked for the detail (``?detail=1``) and may see it (staff).

    Raises ValidationFailed for another value of ``detail``, Unauthorized without a valid access
    token, Forbidden for a user who is not staff."""
    asked = request.args.get("detail", "0")
    if asked not in ("0", "1"):
        raise ValidationFailed("detail must be 0 or 1", field="detail")
    if asked == "0":
        return False
    claims = state.tokens.verify(bearer_token(request.headers.get("Authorization")), ACCESS)
    user = await state.ctx.store.get_user(claims.user_id)
    if user is None:
        raise Unauthorized("the token's user no longer exists")
    if not user.is_staff:
        raise Forbidden("only staff may see the readiness detail")
    return True


async def readyz(state: State, user_id: None) -> Response:
    """200 when the database answers and every enabled feed is ready; else 503 with reasons.

    The answer's size is bounded by the enabled feeds and sinks, never by symbols or users; the
    detail only for staff (see the module docstring)."""
    detail = await _wants_detail(state)
    checks: dict[str, Any] = {}
    reasons: list[str] = []
    db_reason = _cut(await _database_reason(state))
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
        reason = _cut(feed.ready_reason())
        feeds[name] = {
            "ok": reason is None,
            "reason": reason,
            "connected": feed.connected,
            "symbols_subscribed": len(feed.symbols),  # O(1): sets
            "symbols_rejected": len(feed.rejected),
        }
        if detail:
            feeds[name].update(feed.as_dict())
        if reason is not None:
            reasons.append(f"feed {name} {reason}")
    checks["feeds"] = feeds
    # The enabled sinks' channels, each down one with why (a mail server refusing the login):
    # shown, not a reason to leave the load balancer, since the API and the matching still work
    # and the notifications wait in the outbox until the channel is back.
    down = state.ctx.delivery.problems()
    checks["channels"] = {
        name: {"ok": name not in down, "reason": _cut(down.get(name))}
        for name in sorted(state.ctx.delivery.sinks)
    }
    # What the engine set aside instead of crashing (engine/quarantine.py): shown, not a reason
    # to leave the load balancer, since everything else still works. Counts per kind in public,
    # the latest entries (alert ids, samples) in the detail.
    summary = state.ctx.quarantine.summary()
    checks["quarantine"] = summary if detail else {"counts": summary["counts"]}
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
            "Readiness: database and feeds (the detail for staff: ?detail=1 with a token)",
            auth=False,
            tag="ops",
            query=(
                Param(
                    "detail",
                    {"type": "string", "enum": ["0", "1"]},
                    "1: each feed's symbols and rejections and the latest quarantine entries;"
                    " needs a staff user's access token (401 without one, 403 if not staff)",
                ),
            ),
            responses={**ok(200, "ready", ref("Ready")), **problems(401, 403, 422, 503)},
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
