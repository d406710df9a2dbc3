"""The refund events outbox: a RefundEvent row per refund creation and change.

Every place that creates a refund or changes its status calls ``record_refund_event`` in
the same transaction, bumping the refund's revision first, so the event exists exactly
when the change does. Webhook deliveries (actions/webhooks.py) and the accounting export
(actions/accounting_export.py) read from here; Prefect events are emitted by the tasks.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlmodel import Session

from db.models import REFUND_API_STATUS, Refund, RefundEvent
from domain.money import quantize

CREATED, UPDATED = "RefundCreated", "RefundUpdated"


def _timestamp(value) -> str:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def refund_entity(refund: Refund) -> dict[str, Any]:
    """The refund as webhooks and exports carry it: camelCase, amounts as exact strings."""
    return {
        "id": refund.id,
        "chargeId": refund.payment_id,
        "orderPaymentSummaryId": refund.order_payment_summary_id,
        "creditMemoId": refund.credit_memo_id,
        "amount": str(quantize(refund.amount, refund.currency_iso_code, strict=False)),
        "currencyCode": refund.currency_iso_code,
        "status": REFUND_API_STATUS[refund.status],
        "fundingSource": refund.funding_source,
        "reason": refund.reason,
        "note": refund.note,
        "directDebitOverrideReason": refund.direct_debit_override_reason,
        "gatewayReferenceNumber": refund.gateway_ref_number,
        "revision": refund.revision,
        "createdDate": _timestamp(refund.created_date),
        "updatedDate": _timestamp(refund.last_modified_date),
    }


def record_refund_event(session: Session, refund: Refund, event_type: str) -> RefundEvent:
    """Write the event of ``refund``'s creation or latest change (call after the change)."""
    event = RefundEvent(event_id=str(uuid.uuid4()), event_type=event_type, refund_id=refund.id, sequence=refund.revision,
                        entity=json.dumps(refund_entity(refund), separators=(",", ":")))
    session.add(event)
    return event
