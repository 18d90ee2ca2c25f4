"""The QuartTrio application: routes from ``web/spec.py`` values, problem+json for every error.

Each route's view checks the bearer token (when the route needs one) and calls its handler
with the shared :class:`State`. Errors become problem+json through ``web/problems.py``:
ours by class, the framework's (404 route, 405 method, 413 body) by status, anything else is a
500 whose cause is logged and never shown.

What a path serves is decided once, by the router (:class:`Methods`): a 405's ``Allow`` and the
answer to ``OPTIONS`` (204 with ``Allow``, no token needed) are both read from it, and a
trailing slash is optional on every path (the document lists what each spelling serves).

:func:`create_app` returns a :class:`WebApp`: the Quart app, the ASGI app the server serves
(the Quart app behind ``web/fastlane.py``), the shared :class:`State` whose batchers the
server runs, the routes, and the live streams (``web/stream.py``, in front of both).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import msgspec
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as NoRoute
from werkzeug.routing import IntegerConverter, Map

from engine.errors import ApiError, Conflict, StoreUnavailable
from engine.parts import Parts
from web import accounts, alerts, choices, destinations, legacy, ops, page, prices
from web.auth import (
    ACCESS,
    LoginGuard,
    PasswordHasher,
    RegistrationLimiter,
    TokenCodec,
    bearer_token,
)
from web.batcher import CreateBatcher, ListBatcher
from web.context import State, WebSettings
from web.fastlane import ASGIApp, FastLane
from web.openapi import build_spec
from web.problems import INTERNAL, allowed_only, from_error, from_http, options_answer, problem
from web.spec import Route
from web.stream import StreamApp, Streams
from web.validation import Body

log = logging.getLogger(__name__)

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class WebApp:
    """One engine's web application, as :func:`create_app` built it.

    ``asgi`` is what a server serves (``quart`` behind the fast lane); ``state.creates`` and
    ``state.lists`` are the batchers the server must run (:func:`web.server.run_web` does);
    ``routes`` are every route served, in the document's order.
    """

    quart: QuartTrio
    asgi: ASGIApp
    state: State
    routes: list[Route]
    streams: Streams  # the open ``/api/stream`` connections, for publishers (web/stream.py)


class PathId(IntegerConverter):
    """``<int:...>`` in a rule: an id the database can hold (1 .. 2**63-1), else no route (404).

    Bounding ids in the router, not in each handler, makes every method (and ``OPTIONS``) agree
    that ``/api/alerts/0`` or ``/api/alerts/99999999999999999999`` names nothing.
    """

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)


class Methods:
    """The methods each path serves, asked of the router that dispatches the requests.

    A method is served at a path when the router finds a rule for it there, so with trailing
    slashes optional ``/api/alerts/1/`` serves what ``/api/alerts/1`` serves too. ``HEAD`` comes
    with ``GET`` (the router adds it), ``OPTIONS`` with anything served.
    """

    def __init__(self, url_map: Map, routes: list[Route]) -> None:
        self._adapter = url_map.bind("localhost")
        self._methods = sorted({route.method for route in routes})

    def at(self, path: str) -> tuple[str, ...]:
        """The ``Allow`` list of ``path`` in a fixed order; empty when no route has it."""
        served: set[str] = set()
        for method in self._methods:
            try:
                self._adapter.match(path, method=method)
            except HTTPException:
                continue
            served.add(method)
        if "GET" in served:
            served.add("HEAD")
        if served:
            served.add("OPTIONS")
        return tuple(m for m in METHOD_ORDER if m in served)


def all_routes(ctx: Parts) -> list[Route]:
    """Every route the app serves, in the order the document lists them."""
    account_routes = accounts.routes()
    historic = legacy.routes(ctx, account_routes)
    # A historic route given again in web/legacy.py (with every seed client's body) wins.
    taken = {(route.method, route.path) for route in historic}
    routes = [
        *account_routes,
        *alerts.routes(ctx),
        *destinations.routes(ctx),
        *prices.routes(ctx),
        *choices.routes(ctx),
        *ops.routes(),
        *page.routes(page.Files()),
    ]
    return [*(r for r in routes if (r.method, r.path) not in taken), *historic]


def _view(state: State, route: Route) -> Any:
    handler = route.handler
    if route.auth:

        async def authed(**path: Any) -> Response:
            token = bearer_token(request.headers.get("Authorization"))
            claims = state.tokens.verify(token, ACCESS)
            return await handler(state, claims.user_id, **path)

        return authed

    async def public(**path: Any) -> Response:
        return await handler(state, None, **path)

    return public


def create_app(ctx: Parts, secret: str, settings: WebSettings | None = None) -> WebApp:
    """The application for one engine; ``secret`` signs tokens (see ``auth.resolve_secret``).

    Serve ``.asgi`` with :func:`web.server.run_web`, which also runs the app's batchers
    (``.state.creates`` and ``.lists``): without them an alert create or an unfiltered list
    would wait forever.
    """
    settings = settings or WebSettings()
    app = QuartTrio(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False  # "//" is no route (404), not a redirect
    app.url_map.converters["int"] = PathId
    routes = all_routes(ctx)
    state = State(
        ctx=ctx,
        settings=settings,
        tokens=TokenCodec(secret, ctx.config.auth.access_ttl_s, ctx.config.auth.refresh_ttl_s),
        hasher=PasswordHasher(settings.bcrypt_rounds, settings.bcrypt_threads, settings.hash_queue),
        logins=LoginGuard(
            settings.login_per_user,
            settings.login_per_username,
            settings.login_per_address,
            settings.login_window_s,
        ),
        registrations=RegistrationLimiter(
            ctx.config.auth.register_per_hour, ctx.config.auth.register_global_per_hour
        ),
        creates=CreateBatcher(ctx.store, ctx.commands, limits=ctx.config.limits),
        lists=ListBatcher(ctx.store),
    )
    state.bodies.update(
        (route.body.name, route.body) for route in routes if isinstance(route.body, Body)
    )
    state.openapi = msgspec.json.encode(build_spec(routes, legacy.components()))
    for route in routes:
        app.add_url_rule(
            route.rule,
            endpoint=route.endpoint,
            view_func=_view(state, route),
            methods=[route.method],
            provide_automatic_options=False,
        )
    _install_error_handlers(app, Methods(app.url_map, routes))
    lane = FastLane(app, state, error_response, settings.max_body, enabled=settings.fast_lane)
    asgi = StreamApp(lane, state)  # WebSocket /api/stream, served past Quart
    metrics = ctx.metrics

    @app.after_request
    async def count(response: Response) -> Response:
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        metrics.http_requests.inc(method=method, status=str(response.status_code))
        return response

    return WebApp(app, asgi, state, routes, asgi.streams)


def error_response(error: BaseException, method: str, path: str) -> Response:
    """The answer to an error a handler raised: ours by class, the framework's by status,
    anything else a 500 whose cause is logged (the app's error handlers and the fast lane)."""
    if isinstance(error, ApiError | Conflict):
        return from_error(error)
    if isinstance(error, StoreUnavailable):
        log.warning("store unavailable during %s %s: %s", method, path, error)
        return from_error(error)
    if isinstance(error, HTTPException):
        return from_http(error)
    log.error("500 on %s %s", method, path, exc_info=(type(error), error, error.__traceback__))
    return problem(INTERNAL, "the server failed to handle this request; it has been logged")


def routing_answer(methods: Methods, method: str, path: str) -> Response:
    """No rule for this method at this path: ``OPTIONS`` gets 204 with ``Allow``, any other
    method 405 with the same ``Allow``; a path that serves nothing is a 404."""
    allow = methods.at(path)
    if not allow:
        return from_http(NoRoute())
    if method == "OPTIONS":
        return options_answer(allow)
    return allowed_only(allow)


def _install_error_handlers(app: QuartTrio, methods: Methods) -> None:
    @app.errorhandler(Exception)
    async def handle(error: Exception) -> Response:
        if isinstance(error, NoRoute | MethodNotAllowed):  # the router's, never a handler's
            return routing_answer(methods, request.method, request.path)
        return error_response(error, request.method, request.path)
