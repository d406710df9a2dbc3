"""Order Management Connect resources under ``/commerce/order-management/order-summaries``."""

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from pydantic import ValidationError

from actions.ensure_refunds import EnsureRefundsInput, check_ensure_refunds
from api.errors import validation_message
from api.deps import ApiVersion, CurrentCaller, SessionDep
from api.jsonio import ExactJSONResponse, exact_json_body
from api.operations import existing_operation, start_operation
from api.settings import get_api_settings
from db.ids import is_valid_id
from domain.errors import InvalidInputError

router = APIRouter(prefix="/services/data/v{version}/commerce/order-management/order-summaries", tags=["Order Management"])

ExactBody = Annotated[Any, Depends(exact_json_body)]


def _error_output(exc: InvalidInputError) -> InvalidInputError:
    exc.output = {"backgroundOperationId": None}
    return exc


@router.post(
    "/{order_summary_id}/async-actions/ensure-refunds-async",
    status_code=201,
    summary="Ensure Refunds Async (seed 001)",
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": EnsureRefundsInput.model_json_schema()}}, "required": True}},
)
def ensure_refunds_async(
    order_summary_id: str, _version: ApiVersion, caller: CurrentCaller, session: SessionDep, body: ExactBody,
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", max_length=255,
        description="Send the same key when retrying after a network error: the same request gets the same "
                    "backgroundOperationId and refunds once; a different request under a used key gets 409.",
    )] = None,
):
    """Check the request against the store, start the operation, answer its id at once."""
    caller.require("refund")
    deployment = get_api_settings().ensure_refunds_deployment
    scoped_key = caller.scoped(idempotency_key) if idempotency_key else None
    if scoped_key and isinstance(body, dict):
        try:
            parameters = _parameters(order_summary_id, EnsureRefundsInput.model_validate(body))
        except ValidationError:
            parameters = None
        if parameters is not None and (replayed := existing_operation(deployment, scoped_key, parameters)):
            return ExactJSONResponse({"backgroundOperationId": str(replayed)}, status_code=201)
    try:
        if not is_valid_id(order_summary_id):
            raise InvalidInputError(f"orderSummaryId '{order_summary_id}' is not a valid record Id")
        request = EnsureRefundsInput.model_validate(body)
        if request.excess_funds_amount is not None and Decimal(_version) < Decimal("49.0"):
            raise InvalidInputError("excessFundsAmount is available from API version 49.0")
        check_ensure_refunds(session=session, order_summary_id=order_summary_id, request=request)
    except ValidationError as exc:
        raise _error_output(InvalidInputError(validation_message(exc.errors()))) from exc
    except InvalidInputError as exc:
        raise _error_output(exc) from None
    session.rollback()  # the check only read
    operation_id = start_operation(deployment, _parameters(order_summary_id, request), idempotency_key=scoped_key)
    return ExactJSONResponse({"backgroundOperationId": str(operation_id)}, status_code=201)


def _parameters(order_summary_id: str, request: EnsureRefundsInput) -> dict[str, Any]:
    return {
        "order_summary_id": order_summary_id,
        "ensure_refunds_input": request.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
