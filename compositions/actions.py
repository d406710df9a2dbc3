"""The actions a composition step may run: their inputs and outputs, from their typed models.

A step's inputs are the action's own fields by their Salesforce names: the record it acts
on (``orderSummaryId``, ``returnOrderId``) beside the fields of its input model
(``changeOrderIds``, ``creditMemoId``...). Its output is the action's output model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from actions.change_orders import (
    ChangeOrderOutput, CreateCreditMemoInput, CreateCreditMemoOutput, CreateInvoiceInput, CreateInvoiceOutput,
    SubmitCancelInput, SubmitReturnInput,
)
from actions.ensure_funds import EnsureFundsInput, EnsureFundsOutput
from actions.ensure_refunds import EnsureRefundsInput, EnsureRefundsOutput
from actions.fulfillment import FulfillItemsInput, FulfillItemsOutput
from db.ids import ID_PATTERN
from actions.returns import CreateReturnOrderInput, CreateReturnOrderOutput, ReturnItemsInput, ReturnItemsOutput


@dataclass(frozen=True)
class ActionSpec:
    """``record``: the id the action acts on, ahead of its input model (None: in the model)."""

    name: str
    record: str | None
    request: type[BaseModel]
    output: type[BaseModel]

    def input_schema(self) -> dict[str, Any]:
        """The step's inputs as one JSON schema object (camelCase names, with $defs)."""
        schema = self.request.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        if self.record:
            schema["properties"] = {self.record: {"type": "string", "pattern": ID_PATTERN.pattern},
                                    **schema.get("properties", {})}
            schema["required"] = [self.record, *schema.get("required", [])]
        return schema

    def output_schema(self) -> dict[str, Any]:
        return self.output.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")


ACTIONS: dict[str, ActionSpec] = {spec.name: spec for spec in (
    ActionSpec("submit-cancel", "orderSummaryId", SubmitCancelInput, ChangeOrderOutput),
    ActionSpec("submit-return", "orderSummaryId", SubmitReturnInput, ChangeOrderOutput),
    ActionSpec("create-credit-memo", "orderSummaryId", CreateCreditMemoInput, CreateCreditMemoOutput),
    ActionSpec("create-invoice-from-change-orders", "orderSummaryId", CreateInvoiceInput, CreateInvoiceOutput),
    ActionSpec("create-return-order", None, CreateReturnOrderInput, CreateReturnOrderOutput),
    ActionSpec("return-return-order-items", "returnOrderId", ReturnItemsInput, ReturnItemsOutput),
    ActionSpec("fulfil-items", "orderSummaryId", FulfillItemsInput, FulfillItemsOutput),
    ActionSpec("ensure-refunds-async", "orderSummaryId", EnsureRefundsInput, EnsureRefundsOutput),
    ActionSpec("ensure-funds-async", "orderSummaryId", EnsureFundsInput, EnsureFundsOutput),
)}
