"""The shape of a composition (plain data: YAML files, block documents, REST bodies)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

NAME = r"^[a-z][a-z0-9-]{0,62}$"
REFERENCE = r"^(inputs|steps|item)(\.[A-Za-z][A-Za-z0-9_-]*)+$"

InputType = Literal["id", "amount", "quantity", "text", "boolean", "ids"]
"""What a composition's input holds: ``ids`` is a list of record ids."""

Operator = Literal["equals", "not equals", "greater than", "at least", "less than", "at most"]


class Reference(BaseModel):
    """A value taken from elsewhere: ``inputs.<name>``, ``steps.<step id>.<output path>``,
    or, inside a Loop, ``item`` / ``item.<path>`` (the element in hand)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: str = Field(pattern=REFERENCE, description="inputs.<name>, steps.<step>.<field>[.<field>...], or item[.<field>].")


def _value(value: Any) -> Any:
    """A step input: a literal, a reference (any object with ``ref``), or lists and
    objects of them. Amounts are exact: a float becomes the Decimal of its repr."""
    if isinstance(value, Reference):
        return value
    if isinstance(value, dict):
        if "ref" in value:
            return Reference.model_validate(value)
        return {str(key): _value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_value(item) for item in value]
    if isinstance(value, float):
        return Decimal(repr(value))
    if value is None or isinstance(value, (str, bool, int, Decimal)):
        return value
    raise ValueError(f"{value!r} is not a literal, a reference or a list or object of them")


Value = Annotated[Any, BeforeValidator(_value)]


class CompositionInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9]*$", description="How steps refer to it: inputs.<name>.")
    type: InputType = Field(description="id, amount, quantity, text, boolean, or ids (a list of record ids).")
    description: str = Field(default="", description="What a person starting the composition should give.")


class Decision(BaseModel):
    """Run the step only when an earlier value compares so with a literal (money exactly)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: str = Field(pattern=REFERENCE, description="The value compared.")
    operator: Operator
    value: str | bool | Decimal = Field(description="What it is compared with.")


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=NAME, description="Unique in the composition; later steps refer to its output by it.")
    action: str = Field(description="The action it runs, e.g. create-credit-memo.")
    inputs: dict[str, Value] = Field(default_factory=dict, description="The action's inputs, by their names.")
    when: Decision | None = Field(default=None, description="A Decision: run only when it holds.")
    for_each: str | None = Field(default=None, pattern=REFERENCE,
                                 description="A Loop: run once per element of this list; item refers to the element.")


class Composition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    description: str = ""
    inputs: list[CompositionInput] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
