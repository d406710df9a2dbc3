"""An action's validated input as a flow run's parameters, shaped like the UI's form sends them.

The deployments enforce their parameter schema, where money and quantities are JSON
numbers. The input was validated exactly (Decimal, at most 15 significant digits:
actions/fields.py), so each amount becomes the float whose shortest repr is the same
digits, and the flow reads it back as that exact Decimal.
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel

from actions.fields import json_number


def as_parameter(value: Any) -> Any:
    """``value`` with each Decimal a JSON number and each enum its value."""
    if isinstance(value, BaseModel):
        return as_parameter(value.model_dump(mode="python", by_alias=True, exclude_none=True))
    if isinstance(value, dict):
        return {key: as_parameter(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_parameter(item) for item in value]
    if isinstance(value, Decimal):
        return json_number(value)
    if isinstance(value, Enum):
        return value.value
    return value
