"""Query Refunds (seed 003): filter, sort by creation time, cursor paging.

Paging is by keyset on (CreatedDate, Id), never by offset: a cursor says "after this
refund" in the query's order, so a client never sees a refund twice, and never skips one
that was committed when it started paging, whatever is inserted meanwhile. A refund
created concurrently may land before the cursor (its CreatedDate is taken before its
transaction commits) and is then not in this pass; to follow every change, use the
refund events (webhooks, the accounting export) as seed 003 does. The cursor carries the
query, so the next page is the same query; it is opaque (base64 JSON) to callers.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, Field, ValidationError
from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from actions.fields import MAX_ITEMS, ActionModel, RecordId
from actions.payment_refunds import PaymentRefundOutput, refund_output
from db.models import REFUND_API_STATUS, OrderPaymentSummary, Refund, RefundStatus
from domain.errors import InvalidInputError

MAX_PAGE = 100


class RefundState(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REVERSED = "REVERSED"


class SortOrder(StrEnum):
    ASC = "ASC"
    DESC = "DESC"


class RefundFilter(ActionModel):
    """Refunds matching every given field."""

    charge_id: RecordId | None = Field(default=None, description="Refunds of this payment (charge).")
    order_summary_id: RecordId | None = Field(default=None, description="Refunds of this order summary.")
    statuses: list[RefundState] | None = Field(default=None, min_length=1, max_length=MAX_ITEMS, description="Refunds in any of these statuses.")
    created_from: AwareDatetime | None = Field(default=None, description="Created at or after this time.")
    created_before: AwareDatetime | None = Field(default=None, description="Created before this time.")


class RefundQuery(ActionModel):
    filter: RefundFilter = Field(default_factory=RefundFilter)
    order: SortOrder = Field(default=SortOrder.ASC, description="By creation time (then id).")
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(default=None, description="From the previous page; carries the query.")


class RefundPage(ActionModel):
    refunds: list[PaymentRefundOutput]
    next_cursor: str | None
    has_next: bool


def _encode(query: RefundQuery, last: Refund) -> str:
    state = {"filter": query.filter.model_dump(mode="json", exclude_none=True), "order": query.order.value,
             "after": [last.created_date.isoformat(), last.id]}
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def _decode(cursor: str) -> tuple[RefundFilter, SortOrder, datetime, str]:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        created, refund_id = state["after"]
        return (RefundFilter.model_validate(state["filter"]), SortOrder(state["order"]),
                datetime.fromisoformat(created), str(refund_id))
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise InvalidInputError("the cursor is not one this API gave out") from exc


def query_refunds(*, session: Session, query: RefundQuery) -> RefundPage:
    """One page of refunds (at most ``MAX_PAGE``), and the cursor of the next."""
    refund_filter, order, after = query.filter, query.order, None
    if query.cursor:
        refund_filter, order, *after = _decode(query.cursor)
    statement = select(Refund)
    if refund_filter.charge_id:
        statement = statement.where(Refund.payment_id == refund_filter.charge_id)
    if refund_filter.order_summary_id:
        statement = statement.join(OrderPaymentSummary, OrderPaymentSummary.id == Refund.order_payment_summary_id).where(
            OrderPaymentSummary.order_summary_id == refund_filter.order_summary_id)
    if refund_filter.statuses:
        wanted = [s for s, state in REFUND_API_STATUS.items() if state in {v.value for v in refund_filter.statuses}]
        statement = statement.where(col(Refund.status).in_([RefundStatus(s).value for s in wanted]))
    if refund_filter.created_from:
        statement = statement.where(Refund.created_date >= refund_filter.created_from)
    if refund_filter.created_before:
        statement = statement.where(Refund.created_date < refund_filter.created_before)
    created, refund_id = col(Refund.created_date), col(Refund.id)
    if after:
        at, last_id = after
        if order is SortOrder.ASC:
            statement = statement.where(or_(created > at, and_(created == at, refund_id > last_id)))
        else:
            statement = statement.where(or_(created < at, and_(created == at, refund_id < last_id)))
    if order is SortOrder.ASC:
        statement = statement.order_by(created, refund_id)
    else:
        statement = statement.order_by(created.desc(), refund_id.desc())
    rows = list(session.exec(statement.limit(query.limit + 1)))
    page, has_next = rows[:query.limit], len(rows) > query.limit
    effective = RefundQuery(filter=refund_filter, order=order, limit=query.limit)
    return RefundPage(refunds=[refund_output(r) for r in page], has_next=has_next,
                      next_cursor=_encode(effective, page[-1]) if has_next else None)
