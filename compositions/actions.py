"""The actions a composition step may run: their inputs and outputs, from their typed models.

A step's inputs are the action's own fields by their Salesforce names: the record it acts
on (``orderSummaryId``, ``returnOrderId``) beside the fields of its input model
(``changeOrderIds``, ``creditMemoId``...). Its output is the action's output model. Each
action runs as its own Prefect task, so a step is a task run of the action's task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect import Task
from pydantic import BaseModel
from sqlmodel import Session

from actions.change_orders import (
    ChangeOrderOutput, CreateCreditMemoInput, CreateCreditMemoOutput, CreateInvoiceInput, CreateInvoiceOutput,
    SubmitCancelInput, SubmitReturnInput, create_credit_memo, create_credit_memo_from_change_orders, create_invoice,
    create_invoice_from_fee_change_orders, submit_cancel, submit_cancel_items, submit_return, submit_return_items,
)
from actions.ensure_funds import EnsureFundsInput, EnsureFundsOutput, check_ensure_funds, ensure_funds
from actions.ensure_refunds import EnsureRefundsInput, EnsureRefundsOutput, check_ensure_refunds, ensure_refunds
from actions.fulfillment import FulfillItemsInput, FulfillItemsOutput, fulfill_and_invoice, fulfill_items
from actions.returns import (
    CreateReturnOrderInput, CreateReturnOrderOutput, FlagOpenBalanceInput, FlagOpenBalanceOutput, ReturnItemsInput,
    ReturnItemsOutput, create_return_order, create_return_order_lines, flag_unpaid_invoice, process_return_items,
    return_items,
)
from db.ids import ID_PATTERN

DryRun = Callable[[Session, str | None, BaseModel], object]
"""Do the action's store work in a session the caller rolls back: the facade's check."""


@dataclass(frozen=True)
class ActionSpec:
    """One action as a step sees it. ``record``: the id it acts on, ahead of its input
    model (None: the id is in the model)."""

    name: str
    record: str | None
    request: type[BaseModel]
    output: type[BaseModel]
    task: Task
    dry_run: DryRun | None = None

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

    def split(self, values: dict[str, Any]) -> tuple[str | None, BaseModel]:
        """A step's resolved inputs as the action's (record id, typed request)."""
        values = dict(values)
        record_id = values.pop(self.record) if self.record else None
        return record_id, self.request.model_validate(values)

    def run(self, record_id: str | None, request: BaseModel, operation_id: str, *, task_run_name: str) -> BaseModel:
        """Run the action's task as one task run of the current flow run."""
        task = self.task.with_options(task_run_name=task_run_name)
        return task(request, operation_id) if self.record is None else task(record_id, request, operation_id)


def _flag_open_balance(session: Session, invoice_id: str | None, _request: BaseModel) -> object:
    from actions.returns import flag_open_balance
    return flag_open_balance(session=session, invoice_id=invoice_id, operation_id=None)


def _keywords(function: Callable, record: str | None) -> DryRun:
    if record is None:
        return lambda session, _record_id, request: function(session=session, request=request)
    return lambda session, record_id, request: function(session=session, request=request, **{record: record_id})


ACTIONS: dict[str, ActionSpec] = {spec.name: spec for spec in (
    ActionSpec("submit-cancel", "orderSummaryId", SubmitCancelInput, ChangeOrderOutput, submit_cancel,
               _keywords(submit_cancel_items, "order_summary_id")),
    ActionSpec("submit-return", "orderSummaryId", SubmitReturnInput, ChangeOrderOutput, submit_return,
               _keywords(submit_return_items, "order_summary_id")),
    ActionSpec("create-credit-memo", "orderSummaryId", CreateCreditMemoInput, CreateCreditMemoOutput, create_credit_memo,
               _keywords(create_credit_memo_from_change_orders, "order_summary_id")),
    ActionSpec("create-invoice-from-change-orders", "orderSummaryId", CreateInvoiceInput, CreateInvoiceOutput,
               create_invoice, _keywords(create_invoice_from_fee_change_orders, "order_summary_id")),
    ActionSpec("create-return-order", None, CreateReturnOrderInput, CreateReturnOrderOutput, create_return_order,
               _keywords(create_return_order_lines, None)),
    ActionSpec("return-return-order-items", "returnOrderId", ReturnItemsInput, ReturnItemsOutput, return_items,
               _keywords(process_return_items, "return_order_id")),
    ActionSpec("fulfil-items", "orderSummaryId", FulfillItemsInput, FulfillItemsOutput, fulfill_items,
               _keywords(fulfill_and_invoice, "order_summary_id")),
    ActionSpec("ensure-refunds-async", "orderSummaryId", EnsureRefundsInput, EnsureRefundsOutput, ensure_refunds,
               _keywords(check_ensure_refunds, "order_summary_id")),
    ActionSpec("ensure-funds-async", "orderSummaryId", EnsureFundsInput, EnsureFundsOutput, ensure_funds,
               _keywords(check_ensure_funds, "order_summary_id")),
    ActionSpec("flag-open-balance", "invoiceId", FlagOpenBalanceInput, FlagOpenBalanceOutput, flag_unpaid_invoice,
               _flag_open_balance),
)}

REQUEST_MODELS: dict[str, type[BaseModel]] = {
    spec.request.__name__: spec.request for spec in ACTIONS.values() if spec.request is not FlagOpenBalanceInput}
"""The action input types a composition input may have (compositions.model.InputType)."""
