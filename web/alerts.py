"""Alerts: the canonical routes (create, get, list, soft delete) and their historic aliases.

The work is done in ``web/alert_core.py``, which the seed clients' routes (``web/legacy.py``) and
the fast lane share; here each route reads its request and writes its response.
"""

from __future__ import annotations

import msgspec
from quart import Response, request

from engine.parts import Parts
from web import alert_core as core
from web.context import State
from web.http import json_response, read_json
from web.spec import Route, ok, problems, ref


async def create_alert(state: State, user_id: int) -> Response:
    fields = state.bodies[core.CREATE].clean(await read_json(state.settings.max_body))
    alert = await core.create(state, user_id, fields)
    return json_response(state, core.alert_view(alert, state), 201)


async def get_alert(state: State, user_id: int, alert_id: int) -> Response:
    """The alert with its ``notifications`` (every outbox row of its fires, oldest first);
    lists and creates leave them out."""
    alert = await core.get(state, user_id, alert_id)
    found = await state.ctx.store.outbox.notifications_of([alert.id])
    notes = [msgspec.structs.asdict(note) for note in found.get(alert.id, ())]
    return json_response(state, {**core.alert_view(alert, state), "notifications": notes})


async def delete_alert(state: State, user_id: int, alert_id: int) -> Response:
    """Soft delete (``alert_core.delete``); an alert that already fired or was deleted answers
    200 with the alert unchanged."""
    message, alert = await core.delete(state, user_id, alert_id)
    return json_response(state, {"message": message, "alert": core.alert_view(alert, state)})


async def list_alerts(state: State, user_id: int) -> Response:
    """The owner's alerts, newest first (then highest id), filtered and paginated."""
    payload = await core.alert_page(state, user_id, request.args, request.base_url)
    return json_response(state, payload)


_CREATE_RESPONSES = {
    **ok(201, "the alert, committed and in the book", ref("Alert")),
    **problems(400, 401, 409, 413, 415, 422),
    **core.CREATE_UNAVAILABLE,
}
_ONE = {**ok(200, "the alert", ref("Alert")), **problems(401, 404)}
_DELETE = {**ok(200, "deleted (or already fired/deleted)", ref("Deleted")), **problems(401, 404)}
_LIST = {**ok(200, "a page of alerts, newest first", ref("AlertList")), **problems(401, 422)}


def routes(ctx: Parts) -> list[Route]:
    """The alert routes, canonical first, then the historic aliases."""
    create_rules = core.create_body(ctx)
    list_query = core.list_params(ctx)
    return [
        Route(
            "POST",
            "/api/alerts",
            "/api/alerts",
            create_alert,
            "Create an alert",
            body=create_rules,
            responses=_CREATE_RESPONSES,
        ),
        Route(
            "GET",
            "/api/alerts",
            "/api/alerts",
            list_alerts,
            "List your alerts",
            query=list_query,
            responses=_LIST,
        ),
        Route(
            "GET",
            "/api/alerts/{alert_id}",
            "/api/alerts/<int:alert_id>",
            get_alert,
            "One of your alerts",
            responses=_ONE,
        ),
        Route(
            "DELETE",
            "/api/alerts/{alert_id}",
            "/api/alerts/<int:alert_id>",
            delete_alert,
            "Soft-delete one of your alerts",
            responses=_DELETE,
        ),
        Route(
            "GET",
            "/api/alerts/",
            "/api/alerts/",
            list_alerts,
            "List your alerts (historic)",
            query=list_query,
            responses=_LIST,
            alias_of="GET /api/alerts",
        ),
        Route(
            "GET",
            "/api/alerts/{alert_id}/",
            "/api/alerts/<int:alert_id>/",
            get_alert,
            "One of your alerts (historic)",
            responses=_ONE,
            alias_of="GET /api/alerts/{alert_id}",
        ),
        Route(
            "DELETE",
            "/api/alerts/delete/{alert_id}/",
            "/api/alerts/delete/<int:alert_id>/",
            delete_alert,
            "Soft-delete an alert (historic)",
            responses=_DELETE,
            alias_of="DELETE /api/alerts/{alert_id}",
        ),
    ]
