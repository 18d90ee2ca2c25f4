"""``/openapi.json``: the OpenAPI 3.1 document, built from the same :class:`Route` values the
app registers (see ``web/spec.py``).

Beyond the routes themselves, the document states what the router does for every path: a
trailing slash is optional, so a path also lists (as an alias) each method its twin with or
without the slash serves; ``OPTIONS`` answers 204 with ``Allow`` on every path; ``HEAD`` is
served wherever ``GET`` is. ``web.app.Methods`` answers from the same router, and a test holds
the two together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from web.spec import COMPONENTS, Param, Route, problems, ref

PATH_PARAM = re.compile(r"\{(\w+)\}")


def _path_param(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = (
        {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
        if name.endswith("id")
        else {"type": "string"}
    )
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _given_path_param(param: Param) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": "path",
        "required": True,
        "schema": param.schema,
        "description": param.description,
    }


def _operation(route: Route) -> dict[str, Any]:
    # Any route can fail inside (500) or lose its database (503); both are problem+json.
    responses = {**problems(500, 503), **route.responses}
    op: dict[str, Any] = {
        "operationId": route.endpoint.replace(" ", "_").replace("/", "_").strip("_"),
        "summary": route.summary,
        "tags": [route.tag],
        "responses": {
            str(status): {
                "description": description,
                **({"content": {media: {"schema": schema}}} if schema is not None else {}),
            }
            for status, (description, schema, media) in sorted(responses.items())
        },
    }
    if route.alias_of:
        op["description"] = f"Historic alias of `{route.alias_of}`, kept for older clients."
    given = {p.name: p for p in route.path_params}
    params = [
        _path_param(n) if n not in given else _given_path_param(given[n])
        for n in PATH_PARAM.findall(route.path)
    ]
    params += [
        {
            "name": p.name,
            "in": "query",
            "required": False,
            "schema": p.schema,
            "description": p.description,
        }
        for p in route.query
    ]
    if params:
        op["parameters"] = params
    if route.body is not None:
        name = route.body if isinstance(route.body, str) else route.body.name
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(name)}},
        }
    op["security"] = [{"bearer": []}] if route.auth else []
    return op


def _twin(path: str) -> str:
    return path[:-1] if path.endswith("/") else path + "/"


def _slash_alias(route: Route, path: str) -> dict[str, Any]:
    """``route``'s operation as served at ``path``, its twin with or without a trailing slash."""
    op = _operation(route)
    op["operationId"] += "_slash"
    op["description"] = (
        f"`{route.method} {route.path}` answers here too: a trailing slash is optional."
    )
    return op


def _routed(param: dict[str, Any]) -> dict[str, Any]:
    """A path parameter as the router matches it, which is all ``OPTIONS`` looks at: ids as
    the router bounds them (``web.app.PathId``), any other segment as any text."""
    schema = param["schema"]
    if schema.get("type") != "integer":
        schema = {"type": "string", "minLength": 1}
    return {"name": param["name"], "in": "path", "required": True, "schema": schema}


def _options(path: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_") or "root"
    op: dict[str, Any] = {
        "operationId": f"options_{slug}",
        "summary": "The methods this path serves",
        "description": "No token needed. `HEAD` is served wherever `GET` is.",
        "tags": ["meta"],
        "responses": {
            "204": {
                "description": "no body; `Allow` lists the methods this path serves",
                "headers": {
                    "Allow": {
                        "description": "comma-separated methods, OPTIONS included",
                        "schema": {"type": "string"},
                    }
                },
            },
            **{
                str(status): {"description": text, "content": {media: {"schema": schema}}}
                for status, (text, schema, media) in problems(404).items()
            },
        },
        "security": [],
    }
    if parameters:
        op["parameters"] = parameters
    return op


def build_spec(
    routes: Iterable[Route], extra_components: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document describing every route, request and response."""
    paths: dict[str, dict[str, Any]] = {}
    components = {**COMPONENTS, **(extra_components or {})}
    by_path: dict[str, list[Route]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
        by_path.setdefault(route.path, []).append(route)
        if route.body is not None and not isinstance(route.body, str):
            components[route.body.name] = route.body.schema()  # the rules the handler runs
    for path, ops in paths.items():
        for route in by_path.get(_twin(path), []):
            ops.setdefault(route.method.lower(), _slash_alias(route, path))
        first = next(iter(ops.values()))
        ops["options"] = _options(
            path, [_routed(p) for p in first.get("parameters", []) if p["in"] == "path"]
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "triggerbook",
            "version": "0.1.0",
            "description": "Price triggers over live exchange feeds. Errors are RFC 9457 "
            "application/problem+json. Prices are exact decimals, sent as strings. "
            "A trailing slash is optional on every path. OPTIONS on any path answers 204 "
            "with Allow (no token needed); HEAD is served wherever GET is; any other method "
            "a path does not serve is a 405 with the same Allow. "
            "Live prices: the WebSocket `/api/stream` (not an HTTP operation, so not under "
            'paths). The first message authenticates, `{"type": "auth", "token": "<access>"}` '
            "(never a token in the URL; else close 4401); then "
            '`{"type": "subscribe"|"unsubscribe", "symbols": [{"exchange", "symbol"}]}` (at '
            "most 20 symbols, spelt as the API spells them; answered with `subscribed` or "
            '`error`) and `{"type": "ping"}` (answered `pong`). The server sends `{"type": '
            '"price", "exchange", "symbol", "price", "time"}` at most 4 times a second per '
            "symbol, the latest price only. A client that does not read is closed 4429 (too "
            "slow); at most 5 streams per user (4408) and 1000 in all (4503).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
