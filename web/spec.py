"""The one description of the API: each route with its handler, auth, and schemas.

``web/app.py`` registers the routes from these :class:`Route` values and ``web/openapi.py``
builds ``/openapi.json`` from the same values, so the served routes and the document cannot
drift apart (a test walks ``app.url_map`` to be sure).

Schemas are plain JSON Schema (the subset OpenAPI 3.1 shares with draft 2020-12): ``type``,
``properties``, ``required``, ``additionalProperties``, ``items``, ``enum``, ``format``,
``$ref`` to ``#/components/schemas``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from quart import Response

from web.validation import Body

Schema = dict[str, Any]
Handler = Callable[..., Awaitable[Response]]


def ref(name: str) -> Schema:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: Mapping[str, Schema], optional: Mapping[str, Schema] | None = None) -> Schema:
    """A closed object schema: the ``required`` properties, ``optional`` ones, nothing else."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }


def nullable(schema: Schema) -> Schema:
    return {**schema, "type": [schema["type"], "null"]}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
NUM: Schema = {"type": "number"}
TIME: Schema = {"type": "string", "format": "date-time"}
DECIMAL: Schema = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}
PRICE_IN: Schema = {
    "type": ["string", "number"],
    "description": "a decimal > 0, at most 18 fractional and 30 digits in all; exact",
}
LINK: Schema = {"type": ["string", "null"], "format": "uri"}
STATUS: Schema = {"type": "string", "enum": ["created", "triggered", "deleted"]}
DIRECTION: Schema = {"type": "string", "enum": ["above", "below"]}


def page_of(item: str) -> Schema:
    return obj(
        {
            "count": INT,
            "next": LINK,
            "previous": LINK,
            "results": {"type": "array", "items": ref(item)},
        }
    )


COMPONENTS: dict[str, Schema] = {
    "Problem": {
        "type": "object",
        "properties": {
            "type": STR,
            "title": STR,
            "status": INT,
            "detail": STR,
            "field": STR,
            "checks": {"type": "object"},
        },
        "required": ["type", "title", "status", "detail"],
        "additionalProperties": False,
    },
    "Tokens": obj(
        {
            "access": STR,
            "refresh": STR,
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": INT,
        }
    ),
    "AccessToken": obj(
        {"access": STR, "token_type": {"type": "string", "enum": ["Bearer"]}, "expires_in": INT}
    ),
    "User": obj(
        {"id": INT, "username": STR, "email": STR, "is_staff": BOOL, "created_at": TIME},
        {
            "email_confirmed": {
                **BOOL,
                "description": "GET /api/users/me only: the account's address is confirmed "
                "(needed for its mail when [sinks.email] confirm_account is on)",
            }
        },
    ),
    "NewUser": obj({"id": INT, "username": STR, "email": STR}),
    "UserList": page_of("User"),
    "AlertCreate": obj(
        {"symbol": STR, "target_price": PRICE_IN},
        {"direction": DIRECTION, "exchange": STR, "name": STR, "channels": {"type": "array"}},
    ),
    "LegacyAlertCreate": {
        "type": "object",
        "description": "the historic body: price or trigger_value for target_price; "
        "symbol defaults to BTCUSDT",
        "properties": {
            "symbol": STR,
            "target_price": PRICE_IN,
            "price": PRICE_IN,
            "trigger_value": PRICE_IN,
            "direction": DIRECTION,
            "exchange": STR,
            "name": STR,
        },
        "additionalProperties": False,
    },
    "Alert": obj(
        {
            "id": INT,
            "symbol": STR,
            "exchange": STR,
            "target_price": DECIMAL,
            "direction": DIRECTION,
            "status": STATUS,
            "name": STR,
            "created_at": TIME,
            "triggered_at": nullable(TIME),
            "triggered_price": nullable(DECIMAL),
            "deleted_at": nullable(TIME),
            "tick_time": {
                **nullable(TIME),
                "description": "the exchange's time of the tick that fired it, when it sent one",
            },
            "symbol_status": {
                "type": "string",
                "enum": ["listed", "unlisted", "unverified"],
                "description": "what the exchange's list of traded symbols says of the symbol "
                "now; unverified when no list can be had",
            },
            "problem": {
                "type": ["string", "null"],
                "description": "why this live alert may not fire as asked (set aside by the "
                "engine, or refused by its exchange), else null",
            },
            "channels": {
                "type": "array",
                "items": STR,
                "description": "the channels it notifies: as created, or (channels_default) "
                "every enabled channel at fire time",
            },
            "channels_default": {
                **BOOL,
                "description": "created without channels: the defaults at fire time",
            },
        },
        {
            "price": DECIMAL,
            "trigger_value": DECIMAL,
            "notifications": {
                "type": "array",
                "items": ref("Notification"),
                "description": "every notification of its fires, oldest first; only in "
                "GET /api/alerts/{alert_id} (lists and creates leave it out)",
            },
        },
    ),
    "Notification": obj(
        {
            "id": INT,
            "channel": STR,
            "destination_id": nullable(INT),
            "state": {"type": "string", "enum": ["pending", "delivered", "dead"]},
            "attempts": INT,
            "last_error": {"type": ["string", "null"]},
            "delivered_at": nullable(TIME),
        }
    ),
    "Destination": obj(
        {
            "id": INT,
            "kind": STR,
            "target": {**STR, "description": "masked where it holds a secret"},
            "name": {"type": ["string", "null"]},
            "created_at": TIME,
            "confirmed": {
                **BOOL,
                "description": "false until its owner sends the code mailed to it (email); "
                "nothing is sent to it before",
            },
            "disabled_reason": {
                "type": ["string", "null"],
                "description": "why delivery stopped for good (a webhook's 410), else null",
            },
        },
        {
            "secret": {
                **STR,
                "description": "the webhook signing secret (whsec_...): in the 201 only, never "
                "again",
            },
            "confirmation": ref("Outcome"),
        },
    ),
    "DestinationList": obj({"results": {"type": "array", "items": ref("Destination")}}),
    "Outcome": obj(
        {
            "state": {"type": "string", "enum": ["delivered", "failed", "refused"]},
            "reason": {"type": ["string", "null"]},
        }
    ),
    "AccountEmail": obj({"email": STR, "email_confirmed": BOOL}),
    "AlertList": page_of("Alert"),
    "Deleted": obj({"message": STR, "alert": ref("Alert")}),
    "Price": obj(
        {
            "exchange": STR,
            "symbol": STR,
            "price": DECIMAL,
            "exchange_time": nullable(TIME),
            "age_ms": NUM,
        }
    ),
    "PriceList": obj({"results": {"type": "array", "items": ref("Price")}}),
    "PriceHistory": obj(
        {
            "exchange": STR,
            "symbol": STR,
            "points": {
                "type": "array",
                "items": obj({"time": TIME, "price": DECIMAL}),
                "description": "one point per second (its last price), oldest first",
            },
        }
    ),
    "Health": obj({"status": {"type": "string", "enum": ["ok"]}}),
    "Ready": obj(
        {
            "status": {"type": "string", "enum": ["ready"]},
            "checks": {"type": "object"},
        }
    ),
}


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter."""

    name: str
    schema: Schema
    description: str = ""


@dataclass(frozen=True, slots=True)
class Route:
    """One method on one path.

    ``path`` is in OpenAPI spelling (``/api/alerts/{alert_id}``); ``rule`` is the Quart rule
    (``/api/alerts/<int:alert_id>``). ``body`` is the request body's rules (``web/validation.py``:
    the handler cleans the body with them and the document shows their schema) or the name of a
    component schema; ``responses`` maps each status to ``(description, schema or None, media
    type)``.
    """

    method: str
    path: str
    rule: str
    handler: Handler
    summary: str
    auth: bool = True
    body: Body | str | None = None
    query: tuple[Param, ...] = ()
    path_params: tuple[Param, ...] = ()  # schemas of path parameters beyond the default
    responses: Mapping[int, tuple[str, Schema | None, str]] = field(default_factory=dict)
    alias_of: str | None = None
    tag: str = "api"

    @property
    def endpoint(self) -> str:
        return f"{self.method.lower()} {self.rule}"


JSON = "application/json"
PROBLEM = "application/problem+json"


def ok(
    status: int, description: str, schema: Schema | None, media: str = JSON
) -> dict[int, tuple[str, Schema | None, str]]:
    """One response entry for ``Route.responses``."""
    return {status: (description, schema, media)}


def problems(*statuses: int) -> dict[int, tuple[str, Schema | None, str]]:
    """Problem+json responses for ``statuses``."""
    text = {
        400: "malformed JSON, not an object, or a repeated key",
        401: "missing, invalid, expired or wrong-type token",
        403: "not allowed",
        404: "no such resource (or not yours)",
        409: "already taken, or a per-user limit reached (limit-reached)",
        413: "body over the size cap",
        415: "body is not application/json",
        422: "a field is invalid; `field` names it",
        429: "too many attempts (failed logins, a login in flight, registrations); see Retry-After",
        500: "the server failed; the cause is logged, never shown",
        503: "the database is unavailable, the server is too busy hashing passwords (overloaded,"
        " see Retry-After), or (readyz) not ready: `checks` says why",
    }
    return {s: (text[s], ref("Problem"), PROBLEM) for s in statuses}
