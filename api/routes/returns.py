"""Returns resources under ``/commerce/returns/return-orders`` (Salesforce's ReturnOrder Connect API)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from actions.returns import (
    CreateReturnOrderInput, ReturnItemsInput, create_return_order_lines, process_return_items,
)
from api.deps import ApiVersion, CurrentCaller, SessionDep
from api.jsonio import exact_json_body
from api.sync_actions import IdempotencyKey, run_sync_action

router = APIRouter(prefix="/services/data/v{version}/commerce/returns/return-orders", tags=["Returns"])

ExactBody = Annotated[Any, Depends(exact_json_body)]


def _body_schema(model) -> dict:
    return {"requestBody": {"content": {"application/json": {"schema": model.model_json_schema()}}, "required": True}}


def _create(**kwargs) -> dict[str, Any]:
    return_order, lines, fees = create_return_order_lines(**kwargs)
    return {"returnOrderId": return_order.id, "returnOrderLineItemIds": [line.id for line in lines],
            "feeLineItemIds": [fee.id for fee in fees]}


def _return_items(**kwargs) -> dict[str, Any]:
    return process_return_items(**kwargs).model_dump(mode="python", by_alias=True)


@router.post("", status_code=201, summary="Create Return Order", openapi_extra=_body_schema(CreateReturnOrderInput))
def create_return_order(_version: ApiVersion, caller: CurrentCaller, session: SessionDep, body: ExactBody, request: Request,
                        idempotency_key: IdempotencyKey = None):
    """Expect fulfilled units back, with any return fees; answers the return order's id (needs `write`)."""
    return run_sync_action(CreateReturnOrderInput, _create, record_id=None, caller=caller, session=session, body=body,
                           path=request.url.path, idempotency_key=idempotency_key, version=_version)


@router.post("/{return_order_id}/actions/return-items", status_code=201, summary="Return Return Order Items",
             openapi_extra=_body_schema(ReturnItemsInput))
def return_items(return_order_id: str, _version: ApiVersion, caller: CurrentCaller, session: SessionDep, body: ExactBody,
                 request: Request, idempotency_key: IdempotencyKey = None):
    """Process received lines and fee lines; answers changeOrderId, feeChangeOrderId and the split lines (needs `write`)."""
    return run_sync_action(ReturnItemsInput, _return_items, record_id=("returnOrderId", return_order_id), caller=caller,
                           session=session, body=body, path=request.url.path, idempotency_key=idempotency_key, version=_version)
