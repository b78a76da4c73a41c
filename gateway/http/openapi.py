"""The OpenAPI 3 document, generated from the routes' own marshmallow schemas.

Nothing is written by hand: each ``@api`` route contributes its path, parameters, request
body and responses, so the document cannot drift from what the gateway accepts.
"""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>\w+)>")

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "stable, machine-readable"},
        "detail": {"type": "string"},
        "message_en": {"type": "string"},
        "message_vi": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}


def openapi_path(url: str) -> tuple[str, list[dict[str, Any]]]:
    """Turn a werkzeug rule into an OpenAPI path and its path parameters."""
    params = []
    for match in _CONVERTER.finditer(url):
        kind = "integer" if match.group("conv") == "int" else "string"
        params.append({"in": "path", "name": match.group("name"), "required": True,
                       "schema": {"type": kind}})
    return _CONVERTER.sub(lambda m: "{" + m.group("name") + "}", url), params


def build_spec(routes: list[Any], title: str = "Public-service portal API",
               version: str = "1.0.0") -> dict[str, Any]:
    spec = APISpec(
        title=title, version=version, openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "The gateway's public contract (see API.md). Errors are "
                             "application/problem+json with a stable `code`."},
    )
    spec.components.schema("Problem", PROBLEM_SCHEMA)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer",
                                               "bearerFormat": "JWT"})
    paths: dict[str, dict[str, Any]] = {}
    for route in sorted(routes, key=lambda r: (r.url, r.method)):
        path, params = openapi_path(route.url)
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.method_name,
            "tags": list(route.tags),
            "parameters": list(params),
            "responses": {},
        }
        if route.description:
            operation["description"] = route.description
        if route.query_schema is not None:
            operation["parameters"].append({"in": "query", "schema": route.query_schema})
        if route.body_schema is not None and not route.raw_body:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": route.body_schema}}}
        if route.raw_body:
            operation["requestBody"] = {"required": True, "content": {
                route.content_type: {"schema": {"type": "object"}}}}
        ok: dict[str, Any] = {"description": "Success"}
        if route.response_schema is not None:
            ok["content"] = {"application/json": {"schema": route.response_schema}}
        elif route.status != 204:
            ok["content"] = {route.content_type if route.raw_body is False and route.content_type != "application/json"
                             else "application/json": {"schema": {}}}
        operation["responses"][str(route.status)] = ok
        # What every gateway answer may also be (see server.py and route.py): a too-long query,
        # a failed validation, an internal error, a service that did not answer in time.
        problems: dict[int, Any] = {414: "Query string too long", 422: "Validation failed",
                                    500: "Internal error", 503: "A service is unavailable (see Retry-After)"}
        if params:
            problems[404] = "Not found"
        if route.method.upper() not in ("GET", "HEAD"):
            problems[409] = "Conflicts with the current state"
        if route.body_schema is not None or route.raw_body:
            problems.update({400: "Malformed body", 413: "Body too large", 415: "Unsupported content type"})
        if route.auth is not None:
            operation["security"] = [{"bearer": []}]
            problems.update({401: "Not signed in", 403: "Wrong role or agency"})
        elif route.optional_auth:
            operation["security"] = [{}, {"bearer": []}]
            problems[401] = "The token given is not valid"
        if route.rate_limit:
            problems[429] = "Rate limited (see Retry-After)"
        problems.update(route.responses)
        for status, text in problems.items():
            if isinstance(text, tuple):  # (description, schema[, media type]): an answer that is not a problem
                media = text[2] if len(text) > 2 else "application/json"
                operation["responses"].setdefault(str(status), {
                    "description": text[0], "content": {media: {"schema": text[1]}}})
                continue
            operation["responses"].setdefault(str(status), {
                "description": text,
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
            })
        paths.setdefault(path, {})[route.method.lower()] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
