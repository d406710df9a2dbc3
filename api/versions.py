"""Which request properties an API version has: a property newer than the version in the
path is refused, as Salesforce's own API of that version does not know it.

Each input model names the version its newer properties appeared in as ``SINCE`` (from
Salesforce's Connect REST reference); nested models are followed through their fields.
"""

from __future__ import annotations

import typing
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from api.errors import ApiError
from domain.errors import InvalidInputError


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds: ``X``, ``list[X]``, ``X | None``, ``Annotated[list[X], ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def newer_properties(model: type[BaseModel], body: Any, version: str, prefix: str = "") -> list[str]:
    """``path (version)`` of each property in ``body`` that ``version`` does not have yet."""
    if not isinstance(body, dict):
        return []
    since: dict[str, str] = getattr(model, "SINCE", {})
    fields = {field.alias or name: field for name, field in model.model_fields.items()}
    newer = []
    for key, value in body.items():
        if key in since and Decimal(version) < Decimal(since[key]):
            newer.append(f"{prefix}{key} ({since[key]})")
        field = fields.get(key)
        if field is None:
            continue
        for inner in _models_in(field.annotation):
            for index, element in enumerate(value if isinstance(value, list) else [value]):
                newer.extend(newer_properties(inner, element, version, f"{prefix}{key}[{index}]."))
    return newer


def check_version(model: type[BaseModel], body: Any, version: str) -> None:
    """Refuse a body with properties newer than ``version`` (InvalidInputError, changes nothing)."""
    newer = newer_properties(model, body, version)
    if newer:
        raise InvalidInputError(f"API version {version} does not have: {', '.join(newer)}; use a later version")


def check_resource_version(version: str, since: str, resource: str) -> None:
    """Refuse a resource newer than ``version`` as Salesforce's API of that version does:
    404 NOT_FOUND (changes nothing)."""
    if Decimal(version) < Decimal(since):
        raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: {resource} is available from "
                                         f"API version {since}; this path is v{version}")
