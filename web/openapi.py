"""``/openapi.json``: the OpenAPI 3.1 document, built from the same :class:`Route` values the
app registers (see ``web/spec.py``)."""

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


def build_spec(routes: Iterable[Route]) -> dict[str, Any]:
    """The OpenAPI 3.1 document describing every route, request and response."""
    paths: dict[str, dict[str, Any]] = {}
    components = dict(COMPONENTS)
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
        if route.body is not None and not isinstance(route.body, str):
            components[route.body.name] = route.body.schema()  # the rules the handler runs
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "triggerbook",
            "version": "0.1.0",
            "description": "Price triggers over live exchange feeds. Errors are RFC 9457 "
            "application/problem+json. Prices are exact decimals, sent as strings.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
