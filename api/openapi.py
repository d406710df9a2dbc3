"""The OpenAPI document, with every reference resolvable and every error documented.

Request bodies are documented with their pydantic models' JSON schemas (``openapi_extra``),
which carry their nested models under a local ``$defs`` that an OpenAPI document cannot
point into. Those definitions move to ``components/schemas`` and every ``#/$defs/X``
reference becomes ``#/components/schemas/X``.

Every operation lists the 4xx/5xx answers it can give, read off its dependencies (a
token, an API version, a body, path parameters), each with the body Salesforce answers
there: "Error with Output" on Connect resources, ``[{message, errorCode, fields}]`` on
the REST API's sObject and query resources. FastAPI's default 422 is never answered (bad
input is a 400, as in Salesforce) and is dropped.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from api.deps import api_version, current_caller
from api.errors import sobject_path


def _collect(node: Any, into: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        for name, definition in node.pop("$defs", {}).items():
            definition = _collect(definition, into)
            if into.setdefault(name, definition) != definition:
                raise ValueError(f"two different schemas are both named {name}")
        return {key: _collect(value, into) for key, value in node.items()}
    if isinstance(node, list):
        return [_collect(value, into) for value in node]
    return node


def _point_at_components(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: (value.replace("#/$defs/", "#/components/schemas/") if key == "$ref" and isinstance(value, str)
                      else _point_at_components(value)) for key, value in node.items()}
    if isinstance(node, list):
        return [_point_at_components(value) for value in node]
    return node


def resolvable(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with every local ``$defs`` hoisted into ``components/schemas``."""
    hoisted: dict[str, Any] = {}
    document = _collect(document, hoisted)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in hoisted.items():
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are both named {name}")
    return _point_at_components(document)


ERROR_SCHEMAS: dict[str, Any] = {
    "ErrorWithOutput": {
        "type": "object", "title": "Error with Output",
        "description": "Salesforce's Connect REST error: one element of the list every 4xx/5xx answer carries.",
        "required": ["errorCode", "message"],
        "properties": {
            "errorCode": {"type": "string", "examples": ["INVALID_INPUT", "NOT_FOUND", "INSUFFICIENT_ACCESS"]},
            "message": {"type": "string"},
            "output": {"anyOf": [{"type": "object"}, {"type": "null"}],
                       "description": "What the action could tell about the refused request, if anything."},
            "enhancedErrorType": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    },
    "SObjectError": {
        "type": "object", "title": "sObject error",
        "description": "The REST API's error on sObject and query resources.",
        "required": ["errorCode", "message", "fields"],
        "properties": {
            "message": {"type": "string"},
            "errorCode": {"type": "string", "examples": ["NOT_FOUND", "INVALID_FIELD", "MALFORMED_QUERY"]},
            "fields": {"type": "array", "items": {"type": "string"}, "description": "The fields the error is about."},
        },
    },
}

WHY = {
    400: "The request is invalid (body, parameters or their values); nothing was written or started.",
    401: "No bearer token, or one the engine does not know (INVALID_SESSION_ID).",
    403: "The token lacks the permission this operation needs (INSUFFICIENT_ACCESS).",
    404: "The API version is not served, or a record or resource named in the path does not exist (NOT_FOUND).",
    409: "The Idempotency-Key was used for a different request, or the request conflicts with the records.",
    413: "The request body is larger than the engine accepts (REQUEST_TOO_LARGE).",
    500: "An unexpected error; nothing was started.",
    502: "The payment gateway failed in a way the engine could not resolve.",
    503: "The engine cannot reach its store or its Prefect server; retry with the same Idempotency-Key.",
}


def _calls(dependant: Dependant) -> set[Any]:
    found = {dependant.call}
    for dependency in dependant.dependencies:
        found |= _calls(dependency)
    return found


def error_statuses(route: APIRoute) -> list[int]:
    """The error answers ``route`` can give, from what it depends on."""
    calls = _calls(route.dependant)
    statuses = {500, 503}
    if current_caller in calls:  # and with it the records a request names, which may not exist
        statuses |= {400, 401, 403, 404}
    if api_version in calls or route.dependant.path_params:
        statuses |= {400, 404}
    if route.dependant.query_params or route.dependant.body_params or route.openapi_extra or calls - {route.endpoint}:
        statuses.add(400)
    if route.methods & {"POST", "PATCH"}:
        statuses |= {400, 409, 413}
        if "/refunds" in route.path or "async-actions" in route.path:
            statuses.add(502)
    return sorted(statuses)


def document_errors(document: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """Replace FastAPI's 422 with the errors each operation answers, in the right body shape."""
    document.setdefault("components", {}).setdefault("schemas", {}).update(ERROR_SCHEMAS)
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        shape = "SObjectError" if sobject_path(route.path) else "ErrorWithOutput"
        body = {"application/json": {"schema": {"type": "array", "items": {"$ref": f"#/components/schemas/{shape}"}}}}
        for method in route.methods:
            operation = document["paths"][route.path_format][method.lower()]
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in error_statuses(route):
                responses.setdefault(str(status), {"description": WHY[status], "content": body})
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 body, in that order
        if f'"#/components/schemas/{unused}"' not in json.dumps(document):
            document["components"]["schemas"].pop(unused, None)
    return document


def install_openapi(app: FastAPI, routes: list[Any]) -> None:
    """Make ``app.openapi()`` answer the resolvable, fully documented document (built once);
    ``routes`` are the routers' own routes (FastAPI nests included routers in ``app.routes``)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            app.openapi_schema = document_errors(resolvable(document), routes)
        return app.openapi_schema

    app.openapi = openapi
