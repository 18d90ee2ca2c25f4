"""Accounts: register, login, refresh, who am I, and the staff-only user list.

A login attempt is counted before bcrypt runs, with one in flight per username, and limited per
(username, address) pair, per username and per address in distinct usernames (429 with
``Retry-After``; the keys are explained in ``web/auth.py``), so a refused attempt costs no
CPU. A registration is counted per address and in all (429), and the username is looked up
before the password is hashed (409 without bcrypt). Hashing that would wait past the hasher's
queue is refused with 503 and ``Retry-After`` (``Overloaded``). Listing users needs the
staff flag (set with ``triggerbook users create --staff``); others get 403 there: the route, not
an object, is off limits, so nothing leaks by saying so.
"""

from __future__ import annotations

from typing import Any

from quart import Response, request

from engine.errors import Conflict, Forbidden, Overloaded, StoreUnavailable, Unauthorized
from engine.model import User
from web import validation as v
from web.auth import ACCESS, REFRESH
from web.context import State
from web.http import json_response, page_links, read_json
from web.spec import Param, Route, ok, problems, ref


def user_view(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "is_staff": user.is_staff,
        "created_at": user.created_at,
    }


REGISTER = v.Body("Register", {"username": v.USERNAME, "password": v.PASSWORD, "email": v.EMAIL})
LOGIN = v.Body("Login", {"username": v.Text(150), "password": v.Secret(1024)})
REFRESH_BODY = v.Body("RefreshRequest", {"refresh": v.Secret(4096)})


async def register(state: State, user_id: None) -> Response:
    """Create an account; 409 when the username is taken (case-insensitively).

    Raises :class:`RateLimited` past the address's or everyone's registrations per hour,
    :class:`Conflict` for a taken username (looked up before hashing; the store's unique index
    still decides a race), :class:`Overloaded` when the hasher's registration share is full
    (the registration is then not counted).
    """
    fields = REGISTER.clean(await read_json(state.settings.max_body))
    username, password, email = fields["username"], fields["password"], fields["email"]
    address = _client_address()
    state.registrations.admit(address)
    try:
        if await state.ctx.store.get_user_by_username(username) is not None:
            raise Conflict(f"the username {username!r} is taken")
        digest = await state.hasher.hash(password)
    except (Overloaded, StoreUnavailable):
        state.registrations.undo(address)
        raise
    user = await state.ctx.store.create_user(username, email, digest)
    return json_response(
        state, {"id": user.id, "username": user.username, "email": user.email}, 201
    )


def _client_address() -> str:
    return request.remote_addr or "unknown"


async def login(state: State, user_id: None) -> Response:
    """Access and refresh tokens for a username and password.

    Raises :class:`RateLimited` when a login for the username is in flight or a limit of
    ``state.logins`` is reached, :class:`Overloaded` when the hasher's queue is full, and
    :class:`Unauthorized` for a wrong username or password (one message for both).
    """
    fields = LOGIN.clean(await read_json(state.settings.max_body))
    username, password = fields["username"], fields["password"]
    with state.logins.attempt(username, _client_address()) as attempt:
        user = await state.ctx.store.get_user_by_username(username)
        hashed = None if user is None else user.password_hash
        matched = await state.hasher.check(password, hashed)
        if user is None or not matched:
            raise Unauthorized("wrong username or password")
        attempt.succeeded = True
    return json_response(
        state,
        {
            "access": state.tokens.issue(user.id, ACCESS),
            "refresh": state.tokens.issue(user.id, REFRESH),
            "token_type": "Bearer",
            "expires_in": state.tokens.access_ttl_s,
        },
    )


async def refresh(state: State, user_id: None) -> Response:
    """A new access token for a valid refresh token of a user that still exists."""
    token = REFRESH_BODY.clean(await read_json(state.settings.max_body))["refresh"]
    claims = state.tokens.verify(token, REFRESH)
    if await state.ctx.store.get_user(claims.user_id) is None:
        raise Unauthorized("the token's user no longer exists")
    return json_response(
        state,
        {
            "access": state.tokens.issue(claims.user_id, ACCESS),
            "token_type": "Bearer",
            "expires_in": state.tokens.access_ttl_s,
        },
    )


async def me(state: State, user_id: int) -> Response:
    user = await state.ctx.store.get_user(user_id)
    if user is None:
        raise Unauthorized("the token's user no longer exists")
    confirmed = await state.ctx.store.destinations.account_confirmed(user_id)
    return json_response(state, {**user_view(user), "email_confirmed": confirmed})


async def list_users(state: State, user_id: int) -> Response:
    """Every account, oldest first; staff only (403 otherwise)."""
    v.check_query(request.args, ("page", "page_size"))
    page, size = v.page_params(request.args)
    caller = await state.ctx.store.get_user(user_id)
    if caller is None:
        raise Unauthorized("the token's user no longer exists")
    if not caller.is_staff:
        raise Forbidden("only staff may list users")
    count, users = await state.ctx.store.list_users(size, (page - 1) * size)
    nxt, prev = page_links(page, size, count)
    return json_response(
        state,
        {"count": count, "next": nxt, "previous": prev, "results": [user_view(u) for u in users]},
    )


_REGISTER = {
    **ok(201, "the new account", ref("NewUser")),
    **problems(400, 409, 413, 415, 422, 429),
}
_LOGIN = {**ok(200, "tokens", ref("Tokens")), **problems(400, 401, 413, 415, 422, 429)}
_REFRESH = {
    **ok(200, "a new access token", ref("AccessToken")),
    **problems(400, 401, 413, 415, 422),
}
_PAGE = (
    Param("page", v.page_schema(), "1-based page number"),
    Param("page_size", v.PAGE_SIZE_SCHEMA, "default 10, capped at 100"),
)
_USERS = {**ok(200, "a page of users", ref("UserList")), **problems(401, 403, 422)}


def routes() -> list[Route]:
    """The account routes, canonical first, then the historic aliases."""
    return [
        Route(
            "POST",
            "/api/auth/register",
            "/api/auth/register",
            register,
            "Register",
            auth=False,
            body=REGISTER,
            responses=_REGISTER,
        ),
        Route(
            "POST",
            "/api/auth/login",
            "/api/auth/login",
            login,
            "Log in",
            auth=False,
            body=LOGIN,
            responses=_LOGIN,
        ),
        Route(
            "POST",
            "/api/auth/refresh",
            "/api/auth/refresh",
            refresh,
            "Exchange a refresh token for an access token",
            auth=False,
            body=REFRESH_BODY,
            responses=_REFRESH,
        ),
        Route(
            "GET",
            "/api/users/me",
            "/api/users/me",
            me,
            "Your account",
            responses={**ok(200, "your account", ref("User")), **problems(401)},
        ),
        Route(
            "GET",
            "/api/users",
            "/api/users",
            list_users,
            "Every account (staff only)",
            query=_PAGE,
            responses=_USERS,
        ),
        Route(
            "POST",
            "/api/register/",
            "/api/register/",
            register,
            "Register (historic)",
            auth=False,
            body=REGISTER,
            responses=_REGISTER,
            alias_of="POST /api/auth/register",
        ),
        Route(
            "POST",
            "/api/login/",
            "/api/login/",
            login,
            "Log in (historic)",
            auth=False,
            body=LOGIN,
            responses=_LOGIN,
            alias_of="POST /api/auth/login",
        ),
        Route(
            "POST",
            "/api/token/",
            "/api/token/",
            login,
            "Log in (historic)",
            auth=False,
            body=LOGIN,
            responses=_LOGIN,
            alias_of="POST /api/auth/login",
        ),
        Route(
            "POST",
            "/api/token/refresh/",
            "/api/token/refresh/",
            refresh,
            "Refresh (historic)",
            auth=False,
            body=REFRESH_BODY,
            responses=_REFRESH,
            alias_of="POST /api/auth/refresh",
        ),
        Route(
            "GET",
            "/api/users/",
            "/api/users/",
            list_users,
            "Every account (historic)",
            query=_PAGE,
            responses=_USERS,
            alias_of="GET /api/users",
        ),
    ]
