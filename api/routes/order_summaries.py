"""Order Management Connect resources under ``/commerce/order-management/order-summaries``.

Every async action is checked against the store first (an invalid request starts
nothing), then started as a flow run of its deployment, whose id is answered at once.
"""

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ValidationError
from sqlmodel import Session

from actions.change_orders import (
    CreateCreditMemoInput, SubmitCancelInput, create_credit_memo_from_change_orders, submit_cancel_items,
)
from actions.ensure_funds import EnsureFundsInput, check_ensure_funds
from actions.ensure_refunds import EnsureRefundsInput, check_ensure_refunds
from api.deps import ApiVersion, Caller, CurrentCaller, SessionDep
from api.errors import validation_message
from api.jsonio import ExactJSONResponse, exact_json_body
from api.operations import existing_operation, start_operation
from api.settings import get_api_settings
from db.ids import is_valid_id
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
    return {"order_summary_id": order_summary_id, action.parameter: request.model_dump(mode="json", by_alias=True, exclude_none=True)}


def start_async_action(
    action: AsyncAction, *, order_summary_id: str, version: str, caller: Caller, session: Session, body: Any,
    idempotency_key: str | None,
) -> ExactJSONResponse:
    caller.require(action.permission)
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
        request = action.input_model.model_validate(body)
        if getattr(request, "excess_funds_amount", None) is not None and Decimal(version) < Decimal("49.0"):
            raise InvalidInputError("excessFundsAmount is available from API version 49.0")
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


def _run_sync_action(model: type[BaseModel], run, *, order_summary_id: str, caller: Caller, session: Session, body: Any):
    """A synchronous action: validate, run in one transaction, commit; nothing on error."""
    caller.require("write")
    try:
        if not is_valid_id(order_summary_id):
            raise InvalidInputError(f"orderSummaryId '{order_summary_id}' is not a valid record Id")
        record = run(session=session, order_summary_id=order_summary_id, request=model.model_validate(body))
        session.commit()
    except ValidationError as exc:
        session.rollback()
        raise InvalidInputError(validation_message(exc.errors())) from exc
    except BaseException:
        session.rollback()
        raise
    return record


@router.post("/{order_summary_id}/actions/submit-cancel", status_code=201, summary="Submit Cancel",
             openapi_extra=_body_schema(SubmitCancelInput))
def submit_cancel(order_summary_id: str, _version: ApiVersion, caller: CurrentCaller, session: SessionDep, body: ExactBody):
    """Cancel quantities of unfulfilled order items; answers the Cancel change order (needs `write`)."""
    change_order = _run_sync_action(SubmitCancelInput, submit_cancel_items, order_summary_id=order_summary_id,
                                    caller=caller, session=session, body=body)
    return ExactJSONResponse({"changeOrderId": change_order.id, "totalAmount": change_order.total_amount,
                              "totalTaxAmount": change_order.total_tax_amount}, status_code=201)


@router.post("/{order_summary_id}/actions/create-credit-memo", status_code=201, summary="Create Credit Memo",
             openapi_extra=_body_schema(CreateCreditMemoInput))
def create_credit_memo(order_summary_id: str, _version: ApiVersion, caller: CurrentCaller, session: SessionDep, body: ExactBody):
    """Create one credit memo from Cancel/Return change orders; answers its id (needs `write`)."""
    memo = _run_sync_action(CreateCreditMemoInput, create_credit_memo_from_change_orders, order_summary_id=order_summary_id,
                            caller=caller, session=session, body=body)
    return ExactJSONResponse({"creditMemoId": memo.id}, status_code=201)
