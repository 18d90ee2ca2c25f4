"""Destinations: where a user wants notifications beside the account itself, and the codes
that confirm an address before anything is mailed there.

``POST /api/destinations {kind, target, name?}`` adds one: ``kind`` is an enabled sink that
takes destinations (``webhook``, ``email``, a sink plugin's kind), ``target`` is checked by that
sink (``check_target``, pure, then ``vet_target``, which may resolve names: the webhook sink
refuses private addresses there), and a webhook gets its signing ``secret``, shown in the 201
and never again. Every target is shown through the sink's ``mask_target`` (chat-service URLs
hold tokens). Like alerts, a destination is its owner's alone: any other id is a 404.

An address must be confirmed before it is mailed alerts, so nobody can aim them at a
stranger's inbox: adding an ``email`` destination mails a code to it (``event="confirm"``,
through the running sink, now) and the destination stays unconfirmed until ``POST
/api/destinations/{id}/confirm {code}``. With ``[sinks.email] confirm_account = true`` the
account's own address needs the same (``POST /api/users/me/email/confirm/send``, then ``.../
confirm {code}``) before the account's own mail goes out. Codes are kept as SHA-256 only, end
after an hour or five wrong tries, and an address gets at most five an hour
(``engine/store/destinations.py``, numbers in ``engine/limits.py``).

``POST /api/destinations/{id}/test`` sends one test notification now, outside the outbox, and
answers with what happened: ``delivered``, ``failed`` (would be retried) or ``refused``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from quart import Response

from engine import limits
from engine.errors import (
    Conflict,
    Forbidden,
    LimitReached,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from engine.model import Destination, Notification
from engine.parts import Parts
from engine.plugins.sink import Sink
from engine.store.destinations import DestinationRow, Refused, Verdict
from web import validation as v
from web.context import State
from web.http import json_response, read_json
from web.spec import Route, ok, problems, ref

# Kinds whose destinations are used only once their owner has confirmed them with a code sent
# to the target: an address is someone's inbox; a webhook URL or a chat-service URL is not
# (their owner holds their secrets), so those are confirmed when created.
CONFIRMED_BY_CODE = frozenset({"email"})
ACCOUNT_CHANNEL = "email"  # the sink that mails the account's own address
HIDDEN = "***"  # a target whose sink is not enabled: nothing here can say what is secret in it


def destination_kinds(ctx: Parts) -> tuple[str, ...]:
    """The kinds a destination may have: the enabled sinks that take destinations."""
    return ctx.delivery.destination_kinds


def create_body(ctx: Parts) -> v.Body:
    return v.Body(
        "DestinationCreate",
        {
            "kind": v.Choice(
                lambda: destination_kinds(ctx),
                "an enabled sink that takes destinations",
                "where the sink delivers: webhook (an http(s) URL), email (an address, used "
                "once confirmed), or a sink plugin's kind",
            ),
            "target": v.Text(
                limits.TARGET_MAX,
                1,
                description="the URL or address, as the kind's sink reads it",
            ),
        },
        {"name": v.NAME},
    )


CONFIRM = v.Body("ConfirmCode", {"code": v.Secret(64, "the code mailed to the address")})


def _sink(state: State, kind: str) -> Sink | None:
    return state.ctx.delivery.sinks.get(kind)


def destination_view(state: State, row: DestinationRow) -> dict[str, Any]:
    """A destination as its owner sees it: the target masked by its sink, no secret."""
    sink = _sink(state, row.kind)
    return {
        "id": row.id,
        "kind": row.kind,
        "target": HIDDEN if sink is None else sink.mask_target(row.target),
        "name": row.name,
        "created_at": row.created_at,
        "confirmed": row.confirmed_at is not None,
        "disabled_reason": row.disabled_reason,
    }


async def _owned(state: State, user_id: int, destination_id: int) -> DestinationRow:
    row = await state.ctx.store.destinations.get(user_id, destination_id)
    if row is None:
        raise NotFound("no such destination")
    return row


async def _username(state: State, user_id: int) -> tuple[str, str]:
    user = await state.ctx.store.get_user(user_id)
    if user is None:
        raise Unauthorized("the token's user no longer exists")
    return user.username, user.email


async def _send_code(
    state: State,
    user_id: int,
    channel: str,
    address: str,
    destination: Destination | None,
) -> dict[str, Any]:
    """Make a code for ``address`` and mail it now; the outcome as ``{state, reason}``.
    Raises :class:`RateLimited` when the address had its codes for this hour."""
    username, _email = await _username(state, user_id)
    code = await state.ctx.store.destinations.new_code(
        user_id, None if destination is None else destination.id, address
    )
    if code is None:
        raise RateLimited(
            f"{limits.CODES_PER_HOUR} codes were sent to this address in the last hour; "
            "try again later",
            3600,
        )
    note = Notification(
        0,
        0,
        channel,
        {"username": username, "code": code, "address": address},
        destination,
        event="confirm",
        key=f"confirm-{uuid.uuid4()}",
    )
    outcome = await state.ctx.delivery.send_now(note)
    return {"state": outcome.state, "reason": outcome.reason}


async def create_destination(state: State, user_id: int) -> Response:
    """Check, store and show a new destination (409 when it exists or the account is at
    ``limits.DESTINATIONS_MAX``); an email destination is mailed its code."""
    fields = state.bodies["DestinationCreate"].clean(await read_json(state.settings.max_body))
    kind = fields["kind"]
    sink = _sink(state, kind)
    assert sink is not None  # the rule accepts enabled sinks only
    try:
        target = sink.check_target(fields["target"])
        await sink.vet_target(target)
    except ValueError as exc:
        raise ValidationFailed(f"target: {exc}", field="target") from None
    if len(target) > limits.TARGET_MAX:  # a sink's normal form may be longer than it was given
        raise ValidationFailed(
            f"target is longer than {limits.TARGET_MAX} characters", field="target"
        )
    name = fields["name"].strip() if "name" in fields else None
    secret = sink.new_secret()
    needs_code = kind in CONFIRMED_BY_CODE
    row = await state.ctx.store.destinations.create(
        user_id, kind, target, name, secret, confirmed=not needs_code
    )
    if row is Refused.NO_OWNER:
        raise Unauthorized("the token's user no longer exists")
    if row is Refused.LIMIT:
        raise LimitReached(
            f"you have {limits.DESTINATIONS_MAX} destinations, the most an account may have; "
            "delete one to add another"
        )
    assert isinstance(row, DestinationRow)
    view = destination_view(state, row)
    if secret is not None:
        view["secret"] = secret  # shown this once: only the sink's signatures use it after
    if needs_code:
        view["confirmation"] = await _send_code(state, user_id, kind, target, row.destination())
    return json_response(state, view, 201)


async def list_destinations(state: State, user_id: int) -> Response:
    rows = await state.ctx.store.destinations.list(user_id)
    return json_response(state, {"results": [destination_view(state, r) for r in rows]})


async def delete_destination(state: State, user_id: int, destination_id: int) -> Response:
    """Soft delete: nothing more is queued for it; its past notifications keep its id."""
    if not await state.ctx.store.destinations.delete(user_id, destination_id):
        raise NotFound("no such destination")
    return Response(b"", status=204)


def _sample(username: str, email: str) -> dict[str, object]:
    """A fire's fields for a test notification (``Notification`` says which)."""
    now = datetime.now(UTC).isoformat()
    return {
        "alert_id": 0,
        "name": "test notification",
        "username": username,
        "email": email,
        "exchange": "binance",
        "symbol": "BTCUSDT",
        "direction": "above",
        "target_price": "70000",
        "triggered_price": "70000.01",
        "created_at": now,
        "triggered_at": now,
    }


async def send_test(state: State, user_id: int, destination_id: int) -> Response:
    """Send one test notification through the destination now; 200 with its outcome.
    An unconfirmed address is sent nothing (403): confirm it first."""
    row = await _owned(state, user_id, destination_id)
    if row.confirmed_at is None:
        raise Forbidden("this destination is not confirmed yet: send its code first")
    username, email = await _username(state, user_id)
    note = Notification(
        0,
        0,
        row.kind,
        _sample(username, email),
        row.destination(),
        event="test",
        key=f"test-{uuid.uuid4()}",
    )
    outcome = await state.ctx.delivery.send_now(note)
    return json_response(state, {"state": outcome.state, "reason": outcome.reason})


_VERDICTS = {
    Verdict.SPENT: "this code had too many wrong tries; ask for a new one (confirm/resend)",
    Verdict.EXPIRED: "this code has expired; ask for a new one (confirm/resend)",
}


def _judge(verdict: Verdict, tries_left: int) -> None:
    """Raise for any verdict but ``CONFIRMED``: 422 naming ``code`` for a code that was sent
    (wrong, spent, expired), 409 when none is pending."""
    if verdict is Verdict.CONFIRMED:
        return
    if verdict is Verdict.NONE:
        raise Conflict("no code is pending for this address; ask for one first")
    if verdict is Verdict.WRONG:
        raise ValidationFailed(f"wrong code; {tries_left} tries left", field="code")
    raise ValidationFailed(_VERDICTS[verdict], field="code")


async def confirm_destination(state: State, user_id: int, destination_id: int) -> Response:
    """Confirm the destination with its code; a confirmed one answers 200 as it is."""
    code = CONFIRM.clean(await read_json(state.settings.max_body))["code"]
    row = await _owned(state, user_id, destination_id)
    if row.confirmed_at is None:
        result = await state.ctx.store.destinations.confirm(user_id, row.id, code)
        _judge(result.verdict, result.tries_left)
        row = await _owned(state, user_id, destination_id)
    return json_response(state, destination_view(state, row))


async def resend_code(state: State, user_id: int, destination_id: int) -> Response:
    """A new code for an unconfirmed destination (the earlier one ends)."""
    row = await _owned(state, user_id, destination_id)
    if row.confirmed_at is not None:
        raise Conflict("this destination is confirmed already")
    return json_response(
        state, await _send_code(state, user_id, row.kind, row.target, row.destination())
    )


async def send_account_code(state: State, user_id: int) -> Response:
    """Mail a code to the account's own address (409 when it is confirmed already, or when
    no email sink is enabled to send it)."""
    if ACCOUNT_CHANNEL not in state.ctx.delivery.sinks:
        raise Conflict("no email sink is enabled: there is nothing to confirm an address for")
    if await state.ctx.store.destinations.account_confirmed(user_id):
        raise Conflict("your address is confirmed already")
    _, email = await _username(state, user_id)
    return json_response(state, await _send_code(state, user_id, ACCOUNT_CHANNEL, email, None))


async def confirm_account(state: State, user_id: int) -> Response:
    """Confirm the account's own address with the code mailed to it."""
    code = CONFIRM.clean(await read_json(state.settings.max_body))["code"]
    _, email = await _username(state, user_id)
    if not await state.ctx.store.destinations.account_confirmed(user_id):
        result = await state.ctx.store.destinations.confirm(user_id, None, code)
        _judge(result.verdict, result.tries_left)
    return json_response(state, {"email": email, "email_confirmed": True})


_ONE = "/api/destinations/{destination_id}"
_RULE = "/api/destinations/<int:destination_id>"


def _outcome(description: str) -> dict[int, tuple[str, Any, str]]:
    return ok(200, description, ref("Outcome"))


def routes(ctx: Parts) -> list[Route]:
    """The destination routes and the account's own address confirmation. A server with no
    enabled sink that takes destinations serves no create (405): no body could be valid."""
    create = Route(
        "POST",
        "/api/destinations",
        "/api/destinations",
        create_destination,
        "Add a destination (webhook, email, a sink plugin's kind)",
        body=create_body(ctx),
        responses={
            **ok(201, "the destination (a webhook's secret shown once)", ref("Destination")),
            **problems(400, 401, 409, 413, 415, 422, 429),
        },
    )
    return [
        *([create] if destination_kinds(ctx) else []),
        Route(
            "GET",
            "/api/destinations",
            "/api/destinations",
            list_destinations,
            "Your destinations (targets masked, no secrets)",
            responses={
                **ok(200, "every live destination, oldest first", ref("DestinationList")),
                **problems(401),
            },
        ),
        Route(
            "DELETE",
            _ONE,
            _RULE,
            delete_destination,
            "Delete one of your destinations",
            responses={**ok(204, "deleted", None), **problems(401, 404)},
        ),
        Route(
            "POST",
            f"{_ONE}/test",
            f"{_RULE}/test",
            send_test,
            "Send one test notification now",
            responses={
                **_outcome("what sending did: delivered, failed (would be retried) or refused"),
                **problems(401, 403, 404),
            },
        ),
        Route(
            "POST",
            f"{_ONE}/confirm",
            f"{_RULE}/confirm",
            confirm_destination,
            "Confirm a destination with the code mailed to it",
            body=CONFIRM,
            responses={
                **ok(200, "the destination, confirmed", ref("Destination")),
                **problems(400, 401, 404, 409, 413, 415, 422),
            },
        ),
        Route(
            "POST",
            f"{_ONE}/confirm/resend",
            f"{_RULE}/confirm/resend",
            resend_code,
            "Mail a new confirmation code (the earlier one ends)",
            responses={**_outcome("what mailing the code did"), **problems(401, 404, 409, 429)},
        ),
        Route(
            "POST",
            "/api/users/me/email/confirm/send",
            "/api/users/me/email/confirm/send",
            send_account_code,
            "Mail a confirmation code to your account's address",
            responses={**_outcome("what mailing the code did"), **problems(401, 409, 429)},
        ),
        Route(
            "POST",
            "/api/users/me/email/confirm",
            "/api/users/me/email/confirm",
            confirm_account,
            "Confirm your account's address with the code mailed to it",
            body=CONFIRM,
            responses={
                **ok(200, "your address, confirmed", ref("AccountEmail")),
                **problems(400, 401, 409, 413, 415, 422),
            },
        ),
    ]
