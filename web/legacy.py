"""The routes and bodies the seed clients (``../shared/seeds/``) were written against.

Every handler here translates the historic request into the canonical one and runs the canonical
code (``web/alert_core.py``; the account aliases reuse the canonical account routes that
``routes`` is handed): nothing is validated or written twice.

- BookMyTrigger serves its API at both ``/api/`` and ``/``: ``POST alerts/create/`` with
  ``{"value": ...}`` answers 201 with ``value``, ``user``, ``status`` and ``comparison``
  (``greater`` / ``lower``); ``POST alerts/delete/{id}/`` answers 204; ``GET alerts/`` lists.
- The comprehensive-doc seed: ``POST /auth/register/``, ``POST /auth/login/``,
  ``POST /alerts/create/`` with ``cryptocurrency`` and ``target_price`` (201 with
  ``cryptocurrency`` and ``user``), ``DELETE /alerts/delete/{id}/`` (204),
  ``GET /alerts/?status=&cryptocurrency=`` (``{count, next, previous, results}``).
- The others (``price``, ``trigger_value``, no symbol meaning BTCUSDT) at
  ``POST /api/alerts/create/``, which is defined here so that one body serves every seed.

Statuses of errors stay this API's (422 problem+json naming the field), not the seeds' 400s,
and prices stay exact decimal strings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from quart import Response, request

from engine.errors import ValidationFailed
from engine.parts import Parts
from web import alert_core as core
from web import markets
from web import validation as v
from web.context import State
from web.http import json_response, read_json
from web.spec import COMPONENTS, STR, Param, Route, Schema, ok, page_of, problems, ref

SEED_CREATE = "SeedAlertCreate"
TARGETS = ("target_price", "price", "trigger_value", "value")
SYMBOLS = ("symbol", "cryptocurrency")
COMPARISON = {"above": "greater", "below": "lower"}  # BookMyTrigger's words for the direction
NEW_STATUS = v.Choice(lambda: ("created",), "a new alert is created")


@dataclasses.dataclass(frozen=True)
class SeedBody(v.Body):
    """The create body of every seed: exactly one target field, at most one symbol field."""

    def schema(self) -> Schema:
        schema = super().schema()
        schema["oneOf"] = [{"required": [name]} for name in TARGETS]
        schema["not"] = {"required": list(SYMBOLS)}
        return schema


def seed_body(ctx: Parts) -> SeedBody:
    """The canonical create rules, plus the seeds' names for the target and the symbol."""
    canonical = core.create_body(ctx)
    rules = {**canonical.required, **canonical.optional}
    return SeedBody(
        SEED_CREATE,
        {},
        {
            "symbol": rules["symbol"],
            "cryptocurrency": rules["symbol"],
            **{name: rules["target_price"] for name in TARGETS},
            **{k: val for k, val in rules.items() if k not in ("symbol", "target_price")},
            "status": NEW_STATUS,
        },
        "every seed client's create body: the target as exactly one of "
        f"{', '.join(TARGETS)}; the symbol as symbol or cryptocurrency (default "
        f"{core.LEGACY_SYMBOL}); status, when sent, must be 'created'",
        conditions=markets.symbol_conditions(ctx, SYMBOLS),
    )


def _one_of(fields: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    given = [name for name in names if name in fields]
    if len(given) > 1:
        raise ValidationFailed(f"send one of {', '.join(given)}, not several", field=given[1])
    return given[0] if given else None


def seed_view(view: dict[str, Any], user_id: int) -> dict[str, Any]:
    """An alert view with the fields the seed clients read: the symbol as ``cryptocurrency``,
    the owner as ``user``, the target as ``value`` and the direction as ``comparison``."""
    view["cryptocurrency"] = view["symbol"]
    view["user"] = user_id
    view["value"] = view["target_price"]
    view["comparison"] = COMPARISON[view["direction"]]
    return view


async def create_alert(state: State, user_id: int) -> Response:
    fields = state.bodies[SEED_CREATE].clean(await read_json(state.settings.max_body))
    target = _one_of(fields, TARGETS)
    if target is None:
        raise ValidationFailed(f"one of {', '.join(TARGETS)} is required", field="target_price")
    symbol = _one_of(fields, SYMBOLS)
    canonical = {k: val for k, val in fields.items() if k not in (*TARGETS, *SYMBOLS, "status")}
    canonical["target_price"] = fields[target]
    canonical["symbol"] = fields[symbol] if symbol else core.LEGACY_SYMBOL
    alert = await core.create(state, user_id, canonical)
    view = seed_view(core.alert_view(alert, state), user_id)
    if target in ("price", "trigger_value"):
        view[target] = view["target_price"]
    return json_response(state, view, 201)


async def list_alerts(state: State, user_id: int) -> Response:
    """The canonical list; ``cryptocurrency`` filters like ``symbol`` (both given: both apply,
    so two different symbols list nothing)."""
    query = request.args.to_dict(flat=True)
    disjoint = False
    if "cryptocurrency" in query:
        crypto = query.pop("cryptocurrency")
        if "symbol" in query:
            given = query.get("exchange")
            ours = markets.spellings(state.ctx, query["symbol"], given)
            disjoint = set(markets.spellings(state.ctx, crypto, given)).isdisjoint(ours)
        else:
            query["symbol"] = crypto
    payload = await core.alert_page(state, user_id, query, request.base_url)
    if disjoint:
        payload = {"count": 0, "next": None, "previous": None, "results": []}
    payload["results"] = [seed_view(view, user_id) for view in payload["results"]]
    return json_response(state, payload)


async def delete_alert(state: State, user_id: int, alert_id: int) -> Response:
    """The canonical soft delete, answered 204 as the seeds' clients expect."""
    await core.delete(state, user_id, alert_id)
    response = Response(b"", status=204)
    response.headers.pop("Content-Type", None)
    return response


def components() -> dict[str, Schema]:
    """The response schemas of the seed routes: the canonical alert plus the seeds' fields."""
    alert = COMPONENTS["Alert"]
    seed_fields = {
        "cryptocurrency": {**STR, "description": "the symbol (comprehensive-doc seed)"},
        "user": {"type": "integer", "description": "the owner's id"},
        "value": {**alert["properties"]["target_price"], "description": "the target"},
        "comparison": {
            "type": "string",
            "enum": sorted(COMPARISON.values()),
            "description": "BookMyTrigger's direction: greater = above, lower = below",
        },
    }
    seed_alert = {
        **alert,
        "properties": {**alert["properties"], **seed_fields},
        "required": [*alert["required"], *seed_fields],
    }
    return {"SeedAlert": seed_alert, "SeedAlertList": page_of("SeedAlert")}


_CREATED = {
    **ok(201, "the alert, committed and in the book", ref("SeedAlert")),
    **problems(400, 401, 409, 413, 415, 422),
    **core.CREATE_UNAVAILABLE,
}
_GONE = {**ok(204, "deleted (or already fired/deleted)", None), **problems(401, 404)}
_LISTED = {**ok(200, "a page of alerts, newest first", ref("SeedAlertList")), **problems(401, 422)}


def _account_alias(accounts: Sequence[Route], path: str, canonical: str) -> Route:
    route = next(r for r in accounts if r.path == canonical)
    return dataclasses.replace(
        route,
        path=path,
        rule=path,
        summary=f"{route.summary} (historic)",
        alias_of=f"{route.method} {canonical}",
    )


def routes(ctx: Parts, accounts: Sequence[Route]) -> list[Route]:
    """The seed clients' routes; ``accounts`` are the canonical account routes (the seeds'
    register and login are aliases of theirs)."""
    body = seed_body(ctx)
    listed = core.list_params(ctx)
    symbol = next(p for p in listed if p.name == "symbol")
    query = (*listed, Param("cryptocurrency", symbol.schema, "the same as symbol"))

    def create(path: str) -> Route:
        return Route(
            "POST",
            path,
            path,
            create_alert,
            "Create an alert (the seed clients' body)",
            body=body,
            responses=_CREATED,
            alias_of="POST /api/alerts",
        )

    def delete(method: str, prefix: str) -> Route:
        return Route(
            method,
            f"{prefix}/alerts/delete/{{alert_id}}/",
            f"{prefix}/alerts/delete/<int:alert_id>/",
            delete_alert,
            "Soft-delete an alert; 204 (historic)",
            responses=_GONE,
            alias_of="DELETE /api/alerts/{alert_id}",
        )

    return [
        _account_alias(accounts, "/auth/register/", "/api/auth/register"),
        _account_alias(accounts, "/auth/login/", "/api/auth/login"),
        create("/api/alerts/create/"),
        create("/alerts/create/"),
        Route(
            "GET",
            "/alerts/",
            "/alerts/",
            list_alerts,
            "List your alerts (historic, with the seeds' fields)",
            query=query,
            responses=_LISTED,
            alias_of="GET /api/alerts",
        ),
        delete("DELETE", ""),
        delete("POST", ""),
        delete("POST", "/api"),
    ]
