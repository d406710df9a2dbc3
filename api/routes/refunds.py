"""Payment-level refunds in the style of seed 003 (Wix Refunds API) under ``/payments/refunds/v1``.

* ``POST /refunds`` records the refund PENDING at once (refusals such as
  PREVIOUSLY_REFUNDED_AMOUNT_MISMATCH or an amount beyond what is refundable come back
  here, having changed nothing) and starts the ``send-payment-refund`` operation that
  calls the gateway; its id is the answer's ``backgroundOperationId``. Needs the
  ``refund`` permission. With an Idempotency-Key a retry after a network error gets the
  same refund back and refunds once; a different body under the key gets 409.
* ``GET /refunds/{id}``, ``POST /refunds/query`` (filter, sort, cursor paging) and
  ``GET /refundability?chargeId=`` read.

Amounts are exact decimal strings, as Wix writes them ("10.50").
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from actions.fields import ActionModel, CurrencyCode, LongText, RecordId, RequiredShortText, ShortText
from actions.payment_refunds import (
    PaymentRefundOutput, RefundabilityOutput, RefundPaymentInput, payment_refundability, refund_output,
    reserve_payment_refund, send_key,
)
from actions.query_refunds import RefundFilter, RefundQuery, SortOrder, query_refunds
from api.deps import CurrentCaller, SessionDep
from api.errors import ApiError, validation_message
from api.jsonio import ExactJSONResponse, dumps, exact_json_body
from api.operations import start_operation
from api.sync_actions import IdempotencyKey, fingerprint, replay_stored
from db.ids import is_valid_id, to_18
from db.ledger import get_or_raise
from db.models import IdempotentRequest, Refund
from domain.errors import InvalidInputError, OrderManagementError

logger = logging.getLogger("om.api")
router = APIRouter(prefix="/payments/refunds/v1", tags=["Refunds (payment level)"])
ExactBody = Annotated[Any, Depends(exact_json_body)]
SEND_DEPLOYMENT = "send-payment-refund/send-payment-refund"


class RefundRequest(ActionModel):
    """The refund to create: the charge, and optionally the amount, currency, reason, note."""

    charge_id: RecordId = Field(description="The payment (charge) to refund.")
    amount: Decimal | None = Field(default=None, gt=0, description="Omit to refund all that remains.")
    currency_code: CurrencyCode | None = None
    reason: ShortText | None = None
    note: LongText | None = None


class DirectDebitOverride(ActionModel):
    reason: RequiredShortText = Field(description="Why a direct debit is refunded anyway.")


class CreateRefundRequest(ActionModel):
    refund: RefundRequest
    previously_refunded_amount: Decimal | None = Field(
        default=None, ge=0, description="The sum of the charge's SUCCEEDED refunds you saw; refused if it changed.")
    direct_debit_override: DirectDebitOverride | None = None


class QueryRequest(BaseModel):
    """``{"query": {"filter": {...}, "sort": [{"fieldName": "createdDate", "order": "ASC"}],
    "cursorPaging": {"limit": 50, "cursor": "..."}}}``."""

    query: dict[str, Any] = Field(default_factory=dict)


def _wire(refund: PaymentRefundOutput) -> dict[str, Any]:
    body = refund.model_dump(mode="python", by_alias=True)
    body["amount"] = str(refund.amount)  # exact decimal string, as Wix writes amounts
    return body


def _refund_body(refund: PaymentRefundOutput) -> dict[str, Any]:
    return {"refund": _wire(refund), "backgroundOperationId": refund.background_operation_id}


@router.post("/refunds", status_code=201, summary="Create Refund",
             openapi_extra={"requestBody": {"content": {"application/json": {
                 "schema": CreateRefundRequest.model_json_schema()}}, "required": True}})
def create_refund(caller: CurrentCaller, session: SessionDep, body: ExactBody, request: Request,
                  idempotency_key: IdempotencyKey = None):
    """Refund a charge (all that remains, or `amount`), guarded by `previouslyRefundedAmount`."""
    caller.require("refund")
    key = caller.scoped(idempotency_key) if idempotency_key else None
    request_fingerprint = fingerprint("POST", request.url.path, body)
    if key and (replayed := replay_stored(session, key, request_fingerprint)):
        return replayed
    try:
        try:
            wanted = CreateRefundRequest.model_validate(body)
            action_input = RefundPaymentInput(
                charge_id=wanted.refund.charge_id, amount=wanted.refund.amount, currency_code=wanted.refund.currency_code,
                reason=wanted.refund.reason, note=wanted.refund.note,
                previously_refunded_amount=wanted.previously_refunded_amount,
                direct_debit_override_reason=wanted.direct_debit_override.reason if wanted.direct_debit_override else None,
            )
        except ValidationError as exc:
            raise InvalidInputError(validation_message(exc.errors())) from exc
        refund = reserve_payment_refund(session=session, request=action_input)
        answer = _refund_body(refund_output(refund))
        if key:
            session.add(IdempotentRequest(key=key, fingerprint=request_fingerprint, status_code=201,
                                          response_body=dumps(answer).decode()))
        session.commit()
    except (OrderManagementError, ApiError, IntegrityError):
        session.rollback()
        if key and (replayed := replay_stored(session, key, request_fingerprint)):
            return replayed
        raise
    return ExactJSONResponse(_start_sending(session, refund.id, key, answer), status_code=201)


def _start_sending(session, refund_id: str, key: str | None, answer: dict[str, Any]) -> dict[str, Any]:
    """Start the operation that sends the recorded refund; the answer with its id. Should
    that fail, the refund stays PENDING with no operation and resolve-gateway-outcomes sends
    it later, with its key."""
    try:
        operation_id = str(start_operation(SEND_DEPLOYMENT, {"refund_id": refund_id}, idempotency_key=send_key(refund_id)))
    except Exception:  # noqa: BLE001 - the refund is recorded: answer it, whatever Prefect says
        logger.exception("could not start %s for refund %s; the resolver will send it", SEND_DEPLOYMENT, refund_id)
        return answer
    answer = {"refund": {**answer["refund"], "backgroundOperationId": operation_id}, "backgroundOperationId": operation_id}
    # If this fails the run still sends it; the resolver finds that run by its key (send_key).
    session.execute(update(Refund).where(Refund.id == refund_id, Refund.background_operation_id.is_(None))
                    .values(background_operation_id=operation_id))
    if key:
        session.execute(update(IdempotentRequest).where(IdempotentRequest.key == key)
                        .values(response_body=dumps(answer).decode()))
    session.commit()
    return answer


@router.get("/refunds/{refund_id}", summary="Get Refund")
def get_refund(refund_id: str, _caller: CurrentCaller, session: SessionDep):
    """The refund: status (PENDING, SUCCEEDED, FAILED, REVERSED), amount, revision, gateway reference."""
    refund = get_or_raise(session, Refund, to_18(refund_id) if is_valid_id(refund_id) else refund_id)
    return ExactJSONResponse({"refund": _wire(refund_output(refund))})


@router.post("/refunds/query", summary="Query Refunds")
def query(_caller: CurrentCaller, session: SessionDep, body: ExactBody):
    """Filter by chargeId, orderSummaryId, status (or `{"$in": [...]}`) and createdDate
    (`{"$gte": ..., "$lt": ...}`); sort by createdDate; cursor paging, at most 100 a page."""
    try:
        request = _refund_query(QueryRequest.model_validate(body).query)
    except ValidationError as exc:
        raise InvalidInputError(validation_message(exc.errors())) from exc
    page = query_refunds(session=session, query=request)
    return ExactJSONResponse({
        "refunds": [_wire(r) for r in page.refunds],
        "pagingMetadata": {"count": len(page.refunds), "cursors": {"next": page.next_cursor}, "hasNext": page.has_next},
    })


def _refund_query(raw: dict[str, Any]) -> RefundQuery:
    if not isinstance(raw, dict):
        raise InvalidInputError("query must be an object")
    unknown = set(raw) - {"filter", "sort", "cursorPaging"}
    if unknown:
        raise InvalidInputError(f"unknown query fields: {', '.join(sorted(unknown))}")
    paging = raw.get("cursorPaging") or {}
    raw_filter = raw.get("filter") or {}
    if not isinstance(raw_filter, dict) or not isinstance(paging, dict):
        raise InvalidInputError("filter and cursorPaging must be objects")
    unknown = set(raw_filter) - {"chargeId", "orderSummaryId", "status", "createdDate"}
    if unknown:
        raise InvalidInputError(f"cannot filter on {', '.join(sorted(unknown))}")
    status = raw_filter.get("status")
    statuses = status.get("$in") if isinstance(status, dict) else ([status] if status else None)
    created = raw_filter.get("createdDate") or {}
    if not isinstance(created, dict) or set(created) - {"$gte", "$lt"}:
        raise InvalidInputError('createdDate takes {"$gte": ..., "$lt": ...}')
    sort = raw.get("sort") or [{"fieldName": "createdDate", "order": "ASC"}]
    if (not isinstance(sort, list) or len(sort) != 1 or not isinstance(sort[0], dict)
            or sort[0].get("fieldName") != "createdDate"):
        raise InvalidInputError("refunds sort by createdDate only")
    order = str(sort[0].get("order", "ASC")).upper()
    if order not in SortOrder.__members__:
        raise InvalidInputError(f"sort order must be ASC or DESC, not {sort[0].get('order')!r}")
    return RefundQuery(
        filter=RefundFilter(charge_id=raw_filter.get("chargeId"), order_summary_id=raw_filter.get("orderSummaryId"),
                            statuses=statuses, created_from=created.get("$gte"), created_before=created.get("$lt")),
        order=SortOrder(order), limit=paging.get("limit", 50), cursor=paging.get("cursor"),
    )


@router.get("/refundability", summary="Get Refundability")
def get_refundability(caller: CurrentCaller, session: SessionDep,
                      charge_id: Annotated[str, Query(alias="chargeId", description="The payment (charge).")]) -> Response:
    """Whether the charge can be refunded now: min/max amount, previously refunded, or the reason not."""
    answer: RefundabilityOutput = payment_refundability(
        session=session, charge_id=charge_id, caller_may_refund="*" in caller.permissions or "refund" in caller.permissions)
    body = answer.model_dump(mode="python", by_alias=True)
    for field in ("minRefundAmount", "maxRefundAmount", "previouslyRefundedAmount"):
        body[field] = str(body[field])
    return ExactJSONResponse({"refundability": body})
