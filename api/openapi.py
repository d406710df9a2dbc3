"""The OpenAPI document, with every reference resolvable.

Request bodies are documented with their pydantic models' JSON schemas (``openapi_extra``),
which carry their nested models under a local ``$defs`` that an OpenAPI document cannot
point into. Those definitions move to ``components/schemas`` and every ``#/$defs/X``
reference becomes ``#/components/schemas/X``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi


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


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` answer the resolvable document (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = resolvable(get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi
