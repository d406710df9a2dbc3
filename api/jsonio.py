"""JSON in and out without binary floats: numbers parse to Decimal, Decimals print exactly."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import simplejson
from fastapi import Request
from fastapi.responses import JSONResponse

from domain.errors import InvalidInputError


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        # Salesforce's own format: 2026-11-22T01:29:44.282+0000
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(content: Any) -> bytes:
    return simplejson.dumps(content, use_decimal=True, default=_default, separators=(",", ":")).encode()


class ExactJSONResponse(JSONResponse):
    """JSONResponse that writes Decimals as exact JSON numbers."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


async def exact_json_body(request: Request) -> Any:
    """The request body parsed with every JSON number as an exact Decimal."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        return simplejson.loads(raw, use_decimal=True)
    except ValueError as exc:
        raise InvalidInputError(f"the request body is not valid JSON: {exc}") from exc

