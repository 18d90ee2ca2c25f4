"""``GET /api/choices``: what a create form may offer, as this engine is configured.

A client (the web page, or any other) should not hard-code the exchanges, the channels or the
destination kinds: they follow the enabled feeds and sinks. This route states them once, in
the same words the create bodies accept, so a form offers only what a create will take: the
exchanges an alert may name (the default one first when it has a feed) with the pattern each
reads symbols by, the channels an alert may name, and the kinds a destination may have.
"""

from __future__ import annotations

from typing import Any

from quart import Response

from engine.parts import Parts
from web import markets
from web.alert_core import channel_kinds
from web.context import State
from web.http import json_response
from web.spec import BOOL, STR, Route, obj, ok, problems

STRINGS = {"type": "array", "items": STR}
SCHEMA = obj(
    {
        "exchanges": {
            "type": "array",
            "items": obj({"name": STR, "symbol_pattern": STR, "default": BOOL}),
            "description": "the exchanges an alert may name, the default first when it has a feed",
        },
        "channels": {**STRINGS, "description": "the channels an alert may name"},
        "destination_kinds": {**STRINGS, "description": "the kinds a destination may have"},
        "account_confirmation": {
            **BOOL,
            "description": "the account's own address is mailed alerts only once confirmed "
            "([sinks.email] confirm_account: POST /api/users/me/email/confirm/send, then .../"
            "confirm {code})",
        },
    }
)


def choices_of(ctx: Parts) -> dict[str, Any]:
    """The choices of this engine (fixed for its life: feeds and sinks do not change)."""
    names = markets.alert_exchanges(ctx)
    names.sort(key=lambda name: name != markets.DEFAULT_EXCHANGE)
    return {
        "exchanges": [
            {
                "name": name,
                "symbol_pattern": ctx.feeds.symbol_pattern(name),
                "default": name == markets.DEFAULT_EXCHANGE,
            }
            for name in names
        ],
        "channels": list(channel_kinds(ctx)),
        "destination_kinds": list(ctx.delivery.destination_kinds),
        # Some enabled sink mails the account only once its address is confirmed: the rule
        # the fire recorder follows (Delivery.fire_channels).
        "account_confirmation": bool(ctx.delivery.fire_channels().confirmed_account),
    }


def routes(ctx: Parts) -> list[Route]:
    body = choices_of(ctx)

    async def choices(state: State, user_id: int) -> Response:
        return json_response(state, body)

    return [
        Route(
            "GET",
            "/api/choices",
            "/api/choices",
            choices,
            "What a create form may offer: exchanges, alert channels, destination kinds",
            responses={**ok(200, "the choices", SCHEMA), **problems(401)},
        )
    ]
