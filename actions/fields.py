"""Field types shared by the actions' inputs, shaped for good Prefect UI forms.

DESIGN.md §4: money is Decimal in Python but a number (minimum 0) in the JSON schema, so
the UI shows a number input; optional fields keep None out of the schema so a blank
input is simply omitted.

Two findings shaped this (Prefect 3.8.8): ``multipleOf: 0.01`` is checked in binary
floating point (jsonschema refuses 19.99 and 0.07), so the schema leaves it out and the
currency's minor unit is checked in Decimal by the action; and Prefect parses a run's
parameters into binary floats, so an amount has at most 15 significant digits: every such
decimal survives the trip through a float (its shortest repr is the same digits), and the
flow turns it back into the exact Decimal before anything is computed. The deployments
therefore enforce their parameter schema, and the REST facade sends amounts as JSON
numbers like the UI does (api/flow_parameters.py).
"""

from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, WithJsonSchema
from pydantic.alias_generators import to_camel

from db.ids import ID_PATTERN, is_valid_id, to_18


def _exact_decimal(value: object) -> object:
    # JSON numbers reach us as exact Decimals (the facade parses them so); a float here
    # came from Python code or a UI number input: take its shortest repr, which is exact
    # for every amount a person can type.
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def _record_id(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError("must be a 15- or 18-character record Id (letters and digits)")
    return to_18(value)


MAX_ITEMS = 1_000
"""Most entries any list of an action's input takes (items, ids, sequences): a request is
a unit of work an operator can read back, and a bigger one is refused up front, not after
it has held the order's lock for minutes."""

MAX_DIGITS = 15
"""Significant digits an amount or quantity may have: what a binary float carries exactly."""


def json_number(value: Decimal) -> int | float:
    """A validated Decimal as the JSON number Prefect's parameters and block documents carry:
    the one place an amount becomes a binary float, and only when the float's shortest repr
    is the same digits (at most MAX_DIGITS), so reading it back gives the exact Decimal."""
    if value == value.to_integral_value():
        return int(value)
    number = float(value)
    if Decimal(repr(number)) != value:  # cannot happen for validated input: refuse rather than round
        raise ValueError(f"{value} has more digits than a JSON number carries exactly")
    return number


def only_empty(reason: str) -> Any:
    """A Salesforce list property this engine has nothing for: accepted only when empty."""
    def _empty(items: list) -> list:
        if items:
            raise ValueError(reason)
        return items
    return Annotated[list[dict[str, Any]], AfterValidator(_empty)]

MoneyAmount = Annotated[
    Decimal,
    BeforeValidator(_exact_decimal),
    Field(ge=0, max_digits=MAX_DIGITS, allow_inf_nan=False),
    WithJsonSchema({"type": "number", "minimum": 0}),
]
"""A non-negative amount in the order's currency; its minor unit is checked later."""

RecordId = Annotated[
    str,
    AfterValidator(_record_id),
    WithJsonSchema({"type": "string", "pattern": ID_PATTERN.pattern}),
]
"""A Salesforce-style record Id (15 or 18 letters and digits), kept in its 18-character form."""


class ActionModel(BaseModel):
    """Inputs and outputs use Salesforce's camelCase names on the wire and in the UI."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def drop_default(schema: dict) -> None:
    """json_schema_extra for optional fields: no default in the form, blank means omitted."""
    schema.pop("default", None)


Quantity = Annotated[
    Decimal,
    BeforeValidator(_exact_decimal),
    Field(gt=0, decimal_places=4, max_digits=MAX_DIGITS, allow_inf_nan=False),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0}),
]
"""A positive item quantity, at most 4 decimal places (what the store keeps exactly)."""


# Length limits sit on the str itself, not on ``str | None``: pydantic cannot apply them to
# an explicit null and raises TypeError (a 500) instead of accepting the None.
ShortText = Annotated[str, StringConstraints(max_length=255)]
"""Up to 255 characters (a reason)."""

RequiredShortText = Annotated[str, StringConstraints(min_length=1, max_length=255)]
"""1 to 255 characters."""

LongText = Annotated[str, StringConstraints(max_length=1000)]
"""Up to 1,000 characters (a note)."""

CurrencyCode = Annotated[str, StringConstraints(min_length=3, max_length=3)]
"""An ISO 4217 code, e.g. USD."""
