"""The QuartTrio application: routes from ``web/spec.py`` values, problem+json for every error.

Each route's view checks the bearer token (when the route needs one) and calls its handler
with the shared :class:`State`. Errors become problem+json through ``web/problems.py``:
ours by class, the framework's (404 route, 405 method, 413 body) by status, anything else is a
500 whose cause is logged and never shown.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from engine.errors import ApiError, Conflict, StoreUnavailable
from web import accounts, alerts, ops, prices
from web.auth import ACCESS, AttemptLimiter, PasswordHasher, TokenCodec, bearer_token
from web.batcher import CreateBatcher, ListBatcher
from web.fastlane import FastLane
from web.openapi import build_spec
from web.problems import INTERNAL, from_error, from_http, problem
from web.spec import Route
from web.state import State, WebSettings

if TYPE_CHECKING:  # web.server imports this module
    from web.server import WebContext

log = logging.getLogger(__name__)

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def all_routes() -> list[Route]:
    """Every route the app serves, in the order the document lists them."""
    return [*accounts.routes(), *alerts.routes(), *prices.routes(), *ops.routes()]


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


def create_app(ctx: WebContext, secret: str, settings: WebSettings | None = None) -> QuartTrio:
    """The application for one engine; ``secret`` signs tokens (see ``auth.resolve_secret``).

    Serve it with :func:`web.server.run_web`, which also runs the app's batchers
    (``app.extensions["triggerbook"].creates`` and ``.lists``): without them an alert create or
    an unfiltered list would wait forever.
    The server serves ``app.extensions["triggerbook.asgi"]``: the app behind its fast lane
    (``web/fastlane.py``).
    """
    settings = settings or WebSettings()
    app = QuartTrio(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.url_map.strict_slashes = False
    routes = all_routes()
    state = State(
        ctx=ctx,
        settings=settings,
        tokens=TokenCodec(secret, ctx.config.auth.access_ttl_s, ctx.config.auth.refresh_ttl_s),
        hasher=PasswordHasher(settings.bcrypt_rounds, settings.bcrypt_threads),
        by_user=AttemptLimiter(settings.login_per_user, settings.login_window_s),
        by_address=AttemptLimiter(settings.login_per_address, settings.login_window_s),
        creates=CreateBatcher(ctx.store, ctx.commands),
        lists=ListBatcher(ctx.store),
    )
    state.openapi = msgspec.json.encode(build_spec(routes))
    for route in routes:
        app.add_url_rule(
            route.rule,
            endpoint=route.endpoint,
            view_func=_view(state, route),
            methods=[route.method],
            provide_automatic_options=False,
        )
    app.extensions["triggerbook"] = state
    app.extensions["triggerbook.routes"] = routes
    _install_error_handlers(app)
    app.extensions["triggerbook.asgi"] = FastLane(app, state, error_response, settings.max_body)
    metrics = ctx.metrics

    @app.after_request
    async def count(response: Response) -> Response:
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        metrics.http_requests.inc(method=method, status=str(response.status_code))
        return response

    return app


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


def _install_error_handlers(app: QuartTrio) -> None:
    @app.errorhandler(Exception)
    async def handle(error: Exception) -> Response:
        return error_response(error, request.method, request.path)
