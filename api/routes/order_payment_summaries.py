"""``/commerce/order-management/order-payment-summaries`` (Salesforce Connect, 48.0): make an
order payment summary from payments or an authorization that belong to none yet."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlmodel import Session

from actions.order_payment_summaries import CreateOrderPaymentSummaryInput, create_order_payment_summary_from
from api.deps import ApiVersion, CurrentCaller, SessionDep
from api.jsonio import exact_json_body
from api.sync_actions import IdempotencyKey, run_sync_action

router = APIRouter(prefix="/services/data/v{version}/commerce/order-management/order-payment-summaries",
                   tags=["Order Management"])

ExactBody = Annotated[Any, Depends(exact_json_body)]


def _create(*, session: Session, request: CreateOrderPaymentSummaryInput) -> dict[str, Any]:
    summary = create_order_payment_summary_from(session=session, request=request)
    return {"orderPaymentSummaryId": summary.id}


@router.post("", status_code=201, summary="Create Order Payment Summary (48.0)", openapi_extra={"requestBody": {
    "content": {"application/json": {"schema": CreateOrderPaymentSummaryInput.model_json_schema()}}, "required": True}})
def create_order_payment_summary(_version: ApiVersion, caller: CurrentCaller, session: SessionDep, body: ExactBody,
                                 request: Request, idempotency_key: IdempotencyKey = None):
    """Salesforce's Create Order Payment Summary: ``{"orderSummaryId", "paymentAuthorizationId"}`` or
    ``{"orderSummaryId", "paymentIds": [...]}`` (exactly one; ``name`` from 66.0) answers
    ``{"orderPaymentSummaryId"}``. The records must belong to no summary yet, be in the order's
    currency and share one payment method; the summary is made in the order's currency and its
    CapturedAmount (or AuthorizationAmount) is what the Processed records hold. One transaction
    under the order summary's lock: a refused request writes nothing (needs `write`)."""
    return run_sync_action(CreateOrderPaymentSummaryInput, _create, record_id=None, caller=caller, session=session,
                           body=body, path=request.url.path, idempotency_key=idempotency_key, version=_version)
