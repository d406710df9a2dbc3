"""The shape of a composition (plain data: YAML files, block documents, REST bodies)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from actions.fields import json_number

NAME = r"^[a-z][a-z0-9-]{0,62}$"
REFERENCE = r"^((inputs|steps)(\.[A-Za-z][A-Za-z0-9_-]*)+|item(\.[A-Za-z][A-Za-z0-9_-]*)*)$"

InputType = Literal[
    "id", "amount", "quantity", "text", "boolean", "ids",
    "SubmitCancelInput", "SubmitReturnInput", "CreateCreditMemoInput", "CreateInvoiceInput", "CreateReturnOrderInput",
    "ReturnItemsInput", "FulfillItemsInput", "EnsureRefundsInput", "EnsureFundsInput",
]
"""What a composition's input holds: ``ids`` is a list of record ids; an action's input
type (``ReturnItemsInput``...) is that action's input object, whose fields steps refer to
as ``inputs.<name>.<field>`` (Flow Builder's Apex-defined variables)."""

ACTION_NAMES = (
    "submit-cancel", "submit-return", "create-credit-memo", "create-invoice-from-change-orders", "create-return-order",
    "return-return-order-items", "fulfil-items", "ensure-refunds-async", "ensure-funds-async", "flag-open-balance",
)
"""The actions a step may run (compositions.actions.ACTIONS), offered by the block form."""

Operator = Literal["equals", "not equals", "greater than", "at least", "less than", "at most", "is set", "is not set"]
"""``is set`` holds for a value that is there (not empty, not from a skipped step)."""


def _in_order(schema: dict[str, Any]) -> None:
    """Prefect's forms show fields by ``position``: keep the order they are declared in."""
    for position, field in enumerate(schema.get("properties", {}).values()):
        field["position"] = position


class Reference(BaseModel):
    """A value taken from elsewhere: ``inputs.<name>``, ``steps.<step id>.<output path>``,
    or, inside a Loop, ``item`` / ``item.<path>`` (the element in hand)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: str = Field(pattern=REFERENCE, description="inputs.NAME, steps.STEP.FIELD (.FIELD...), or in a Loop item (.FIELD...).")


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


def _as_json(value: Any) -> Any:
    """Amounts stay JSON numbers when a composition is saved (a block document, a file):
    at most 15 significant digits (actions.fields.MAX_DIGITS), which a float carries exactly."""
    if isinstance(value, Reference):
        return {"ref": value.ref}
    if isinstance(value, dict):
        return {key: _as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_json(item) for item in value]
    if isinstance(value, Decimal):
        return json_number(value)
    return value


Value = Annotated[Any, BeforeValidator(_value), PlainSerializer(_as_json, when_used="json")]


def _exact(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(repr(value))
    return value


class CompositionInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_in_order)

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9]*$", description="How steps refer to it: inputs.NAME.")
    type: InputType = Field(description="id, amount, quantity, text, boolean, ids (a list of record ids), or an "
                                       "action's input object (e.g. ReturnItemsInput).")
    description: str = Field(default="", description="What a person starting the composition should give.")


class Decision(BaseModel):
    """Run the step only when an earlier value compares so with a literal (money exactly)."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_in_order)

    ref: str = Field(pattern=REFERENCE, title="Compare", description="The value compared: inputs.NAME or steps.STEP.FIELD.")
    operator: Operator = Field(description="How: equals, not equals, greater than, at least, less than, at most, "
                                           "is set, is not set.")
    value: Annotated[bool | Decimal | str | None, BeforeValidator(_exact), PlainSerializer(_as_json, when_used="json")] = Field(
        default=None, description="What it is compared with (none for is set / is not set); amounts compare exactly.")

    @model_validator(mode="after")
    def _value_given(self) -> Decision:
        if (self.value is None) != (self.operator in ("is set", "is not set")):
            raise ValueError(f"'{self.operator}' " + ("takes no value" if self.value is not None else "needs a value"))
        return self


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_in_order)

    id: str = Field(pattern=NAME, description="Unique in the composition; later steps refer to its output by it.")
    action: str = Field(description="The action it runs.", json_schema_extra={"enum": list(ACTION_NAMES)})
    inputs: dict[str, Value] = Field(
        default_factory=dict,
        description='The action\'s inputs by name (JSON): a value, or {"ref": "inputs.NAME"} / {"ref": "steps.STEP.FIELD"}.')
    when: Decision | None = Field(default=None, title="Decision", description="Run this step only when it holds.")
    for_each: str | None = Field(default=None, pattern=REFERENCE, title="Loop over",
                                 description="Run once per element of this list (steps.STEP.FIELD); item is the element.")


class Composition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_in_order)

    name: str = Field(pattern=NAME, description="Its name: the block document's, and the REST path's "
                                                 "(/actions/custom/flow/<name>, - or _).")
    description: str = Field(default="", description="What it does, for the person choosing it.")
    inputs: list[CompositionInput] = Field(default_factory=list, description="What a run is given.")
    steps: list[Step] = Field(min_length=1, description="The steps, in the order they run.")

    @model_validator(mode="after")
    def _not_reserved(self) -> Composition:
        if self.name == "check":
            raise ValueError("'check' is the REST path that checks a composition: choose another name")
        return self
