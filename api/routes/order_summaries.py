"""Order Management Connect resources under ``/commerce/order-management/order-summaries``.

Every async action is checked against the store first (an invalid request starts
nothing), then started as a flow run of its deployment, whose id is answered at once.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ValidationError
from sqlmodel import Session

from actions.change_orders import (
    CreateCreditMemoInput, CreateInvoiceInput, CreateMultipleInvoicesInput, SubmitCancelInput, SubmitReturnInput,
    change_order_output, create_credit_memo_from_change_orders, create_invoice_from_fee_change_orders,
    create_invoices_from_change_orders, submit_cancel_items, submit_return_items,
)
from actions.ensure_funds import EnsureFundsInput, check_ensure_funds
from actions.ensure_refunds import EnsureRefundsInput, check_ensure_refunds
from actions.fulfillment import FulfillItemsInput, fulfill_and_invoice
from api.flow_parameters import as_parameter
from api.deps import ApiVersion, Caller, CurrentCaller, SessionDep
from api.errors import ApiError, validation_message
from api.jsonio import ExactJSONResponse, exact_json_body
from api.operations import existing_operation, start_operation
from api.settings import get_api_settings
from api.versions import check_resource_version, check_version
from api.sync_actions import IdempotencyKey as SyncIdempotencyKey, run_sync_action
from db.ids import is_valid_id, to_18
from db.ledger import order_payment_summaries
from db.models import available_to_refund
from domain.money import ZERO, quantize
from domain.errors import InvalidInputError

router = APIRouter(prefix="/services/data/v{version}/commerce/order-management/order-summaries", tags=["Order Management"])

ExactBody = Annotated[Any, Depends(exact_json_body)]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=255,
    description="Send the same key when retrying after a network error: the same request gets the same "
                "backgroundOperationId and moves money once; a different request under a used key gets 409.",
)]


@dataclass(frozen=True)
class AsyncAction:
    """How one async action is checked and started."""

    input_model: type[BaseModel]
    parameter: str  # the flow's parameter that takes the input
    check: Callable[..., object]  # check(session=, order_summary_id=, request=): raises InvalidInputError
    deployment: Callable[[], str]
    permission: str


ENSURE_REFUNDS = AsyncAction(EnsureRefundsInput, "ensure_refunds_input", check_ensure_refunds,
                             lambda: get_api_settings().ensure_refunds_deployment, "refund")
ENSURE_FUNDS = AsyncAction(EnsureFundsInput, "ensure_funds_input", check_ensure_funds,
                           lambda: get_api_settings().ensure_funds_deployment, "capture")


def _error_output(exc: InvalidInputError) -> InvalidInputError:
    exc.output = {"backgroundOperationId": None}
    return exc


def _parameters(action: AsyncAction, order_summary_id: str, request: BaseModel) -> dict[str, Any]:
    return {"order_summary_id": order_summary_id, action.parameter: as_parameter(request)}


def start_async_action(
    action: AsyncAction, *, order_summary_id: str, version: str, caller: Caller, session: Session, body: Any,
    idempotency_key: str | None,
) -> ExactJSONResponse:
    caller.require(action.permission)
    if is_valid_id(order_summary_id):
        order_summary_id = to_18(order_summary_id)
    deployment = action.deployment()
    scoped_key = caller.scoped(idempotency_key) if idempotency_key else None
    if scoped_key and isinstance(body, dict):  # a retry gets its first answer, even if the store has moved on
        try:
            parameters = _parameters(action, order_summary_id, action.input_model.model_validate(body))
        except ValidationError:
            parameters = None
        if parameters is not None and (replayed := existing_operation(deployment, scoped_key, parameters)):
            return ExactJSONResponse({"backgroundOperationId": str(replayed)}, status_code=201)
    try:
        if not is_valid_id(order_summary_id):
            raise InvalidInputError(f"orderSummaryId '{order_summary_id}' is not a valid record Id")
        check_version(action.input_model, body, version)
        request = action.input_model.model_validate(body)
        action.check(session=session, order_summary_id=order_summary_id, request=request)
    except ValidationError as exc:
        raise _error_output(InvalidInputError(validation_message(exc.errors()))) from exc
    except InvalidInputError as exc:
        raise _error_output(exc) from None
    session.rollback()  # the check only read
    operation_id = start_operation(deployment, _parameters(action, order_summary_id, request), idempotency_key=scoped_key)
    return ExactJSONResponse({"backgroundOperationId": str(operation_id)}, status_code=201)


def _body_schema(model: type[BaseModel]) -> dict:
    return {"requestBody": {"content": {"application/json": {"schema": model.model_json_schema()}}, "required": True}}


@router.post("", summary="Create Order Summary (from an Order): not supported here, refused with the way to do it",
             openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}})
def create_order_summary(_version: ApiVersion, caller: CurrentCaller, body: ExactBody):
    """Salesforce makes an order summary from an Order (``{"orderId"}``, 48.0); this engine
    keeps no Orders, so the request is refused with a clear error, never a silent 404."""
    caller.require("write")
    raise ApiError(400, "INVALID_INPUT", "Order summaries are made from Orders in Salesforce, and this engine keeps no "
                                         "Orders: create the OrderSummary record itself (POST sobjects/OrderSummary), "
                                         "then its items, payment summaries and payments")


@router.post("/{order_summary_id}/async-actions/ensure-refunds-async", status_code=201,
             summary="Ensure Refunds Async (seed 001)", openapi_extra=_body_schema(EnsureRefundsInput))
def ensure_refunds_async(order_summary_id: str, _version: ApiVersion, caller: CurrentCaller, session: SessionDep,
                         body: ExactBody, idempotency_key: IdempotencyKey = None):
    """Refund a credit memo and/or excess funds (needs the `refund` permission)."""
    return start_async_action(ENSURE_REFUNDS, order_summary_id=order_summary_id, version=_version, caller=caller,
                              session=session, body=body, idempotency_key=idempotency_key)


@router.post("/{order_summary_id}/async-actions/ensure-funds-async", status_code=201,
             summary="Ensure Funds Async", openapi_extra=_body_schema(EnsureFundsInput))
def ensure_funds_async(order_summary_id: str, _version: ApiVersion, caller: CurrentCaller, session: SessionDep,
                       body: ExactBody, idempotency_key: IdempotencyKey = None):
    """Pay an invoice from captured balance, then by capturing authorizations (needs the `capture` permission)."""
    return start_async_action(ENSURE_FUNDS, order_summary_id=order_summary_id, version=_version, caller=caller,
                              session=session, body=body, idempotency_key=idempotency_key)


def _change_order_answer(session: Session, change_order) -> dict[str, Any]:
    """Salesforce's Submit Cancel/Return Output: the change order, ``feeChangeOrderId``
    (57.0; no fees on these changes here) and ``changeBalances``, a Change Item Output
    (48.0/49.0) with every property. The changed products' amounts are positive, as
    Salesforce's "opposite of the change order's sign" reads for a reduction; there are no
    delivery charges or distributed adjustments here, so those are 0. totalRefundableAmount
    is the order's AvailableToRefundAmount over its payment summaries (Salesforce's
    definition is not in the reference we found). Our own totalAmount and totalTaxAmount
    stay at the top level, as before."""
    output = change_order_output(session, change_order)
    amount, tax = output.total_amount, output.total_tax_amount
    zero = quantize(ZERO, change_order.currency_iso_code)
    refundable = sum((available_to_refund(ops) for ops in order_payment_summaries(session, change_order.order_summary_id)),
                     zero)
    balances = {
        "grandTotalAmount": amount + tax, "totalAmount": amount, "totalTaxAmount": tax,
        "totalAdjustedProductAmount": amount, "totalAdjustedProductTaxAmount": tax, "totalAdjProductAmtWithTax": amount + tax,
        "totalAdjustedDeliveryAmount": zero, "totalAdjustedDeliveryTaxAmount": zero, "totalAdjDeliveryAmtWithTax": zero,
        "totalAdjustmentDistributedAmount": zero, "totalAdjustmentDistributedTaxAmount": zero,
        "totalAdjDistAmountWithTax": zero,
        "totalExcessFundsAmount": output.excess_funds_amount, "totalRefundableAmount": refundable,
    }
    return {"changeOrderId": output.change_order_id, "feeChangeOrderId": None, "totalAmount": amount,
            "totalTaxAmount": tax, "changeBalances": balances}


def _submit_cancel(*, session: Session, **kwargs) -> dict[str, Any]:
    return _change_order_answer(session, submit_cancel_items(session=session, **kwargs))


def _submit_return(*, session: Session, **kwargs) -> dict[str, Any]:
    return _change_order_answer(session, submit_return_items(session=session, **kwargs))


def _create_credit_memo(**kwargs) -> dict[str, Any]:
    memo = create_credit_memo_from_change_orders(**kwargs)
    return {"creditMemoId": memo.id, "totalAmount": memo.total_amount}


def _create_invoice(**kwargs) -> dict[str, Any]:
    invoice = create_invoice_from_fee_change_orders(**kwargs)
    return {"invoiceId": invoice.id, "totalAmount": invoice.total_amount}


def _fulfill_items(**kwargs) -> dict[str, Any]:
    invoice = fulfill_and_invoice(**kwargs)
    return {"invoiceId": invoice.id, "totalAmount": invoice.total_amount}


@dataclass(frozen=True)
class SyncAction:
    path: str
    summary: str
    description: str
    input_model: type[BaseModel]
    run: Callable[..., dict[str, Any]]


SYNC_ACTIONS = (
    SyncAction("submit-cancel", "Submit Cancel", "Cancel quantities of unfulfilled order items; answers the Cancel "
               "change order (needs `write`).", SubmitCancelInput, _submit_cancel),
    SyncAction("submit-return", "Submit Return", "Return fulfilled units without a return order; answers the Return "
               "change order (needs `write`).", SubmitReturnInput, _submit_return),
    SyncAction("create-credit-memo", "Create Credit Memo", "Create one credit memo from Cancel/Return change orders; "
               "answers its id (needs `write`).", CreateCreditMemoInput, _create_credit_memo),
    SyncAction("create-invoice-from-change-orders", "Create Invoice from Change Orders", "Create one invoice from Fee "
               "change orders (e.g. return fees); answers its id (needs `write`).", CreateInvoiceInput, _create_invoice),
    SyncAction("fulfill-items", "Fulfill Items (this engine's)", "Record shipped units and create their invoice; "
               "answers its id (needs `write`).", FulfillItemsInput, _fulfill_items),
)


def _sync_route(action: SyncAction):
    def route(order_summary_id: str, _version: ApiVersion, caller: CurrentCaller, session: SessionDep, body: ExactBody,
              request: Request, idempotency_key: SyncIdempotencyKey = None):
        return run_sync_action(action.input_model, action.run, record_id=("orderSummaryId", order_summary_id),
                               caller=caller, session=session, body=body, path=request.url.path,
                               idempotency_key=idempotency_key, version=_version)

    route.__name__ = action.path.replace("-", "_")
    route.__doc__ = action.description
    return route


for _action in SYNC_ACTIONS:
    router.add_api_route(f"/{{order_summary_id}}/actions/{_action.path}", _sync_route(_action), methods=["POST"],
                         status_code=201, summary=_action.summary, openapi_extra=_body_schema(_action.input_model))


def _create_multiple_invoices(*, session: Session, request: CreateMultipleInvoicesInput) -> dict[str, Any]:
    invoices = create_invoices_from_change_orders(session=session, request=request)
    return {"invoices": [{"invoiceId": invoice.id, "totalAmount": invoice.total_amount} for invoice in invoices]}


@router.post("/actions/create-multiple-change-invoices", status_code=201,
             summary="Create Multiple Invoices from Change Orders (56.0)",
             openapi_extra=_body_schema(CreateMultipleInvoicesInput))
def create_multiple_change_invoices(_version: ApiVersion, caller: CurrentCaller, session: SessionDep, body: ExactBody,
                                    request: Request, idempotency_key: SyncIdempotencyKey = None):
    """Salesforce's Create Multiple Invoices from Change Orders: one invoice per entry of
    ``invoicesFromChangeOrders`` (``{"orderSummaryId", "changeOrderIds"}``, Fee change orders),
    answered as ``{"invoices": [{"invoiceId"}]}`` in the entries' order (each with our
    ``totalAmount``). Entries may name different order summaries; all the invoices are made in
    one transaction, so a refused entry leaves none (needs `write`). From API version 56.0."""
    check_resource_version(_version, "56.0", "create-multiple-change-invoices")
    return run_sync_action(CreateMultipleInvoicesInput, _create_multiple_invoices, record_id=None, caller=caller,
                           session=session, body=body, path=request.url.path, idempotency_key=idempotency_key,
                           version=_version)
