"""A composition's inputs as a typed model: what a run, the REST facade and an automation
are checked against before any step runs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from actions.fields import MAX_ITEMS, MoneyAmount, Quantity, RecordId
from compositions.actions import REQUEST_MODELS
from compositions.model import Composition
from domain.errors import InvalidInputError

SIMPLE_TYPES: dict[str, Any] = {
    "id": RecordId, "amount": MoneyAmount, "quantity": Quantity, "text": str, "boolean": bool,
    "ids": list[RecordId],
}


class _Inputs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def inputs_model(composition: Composition) -> type[BaseModel]:
    """A model whose fields are the composition's inputs, each required, by its own name."""
    fields: dict[str, Any] = {}
    for given in composition.inputs:
        annotation = SIMPLE_TYPES.get(given.type) or REQUEST_MODELS[given.type]
        extra = {"max_length": MAX_ITEMS} if given.type == "ids" else {}
        fields[given.name] = (annotation, Field(description=given.description or None, **extra))
    return create_model(f"{composition.name}-inputs", __base__=_Inputs, **fields)


def read_inputs(composition: Composition, given: dict[str, Any]) -> dict[str, Any]:
    """The inputs as typed values (Decimal amounts, action input objects), or InvalidInputError
    naming every input that is missing, unknown or of the wrong type."""
    try:
        parsed = inputs_model(composition).model_validate(given)
    except ValidationError as exc:
        problems = "; ".join(f"inputs.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors())
        raise InvalidInputError(f"composition {composition.name}: {problems}") from exc
    return {name: getattr(parsed, name) for name in type(parsed).model_fields}
