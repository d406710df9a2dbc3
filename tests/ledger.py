"""Ledger checks every money-moving test runs (DESIGN.md §8)."""

from __future__ import annotations

from collections import Counter

from sqlmodel import select

from actions.audit_ledger import find_violations
from db.engine import session_scope
from db.models import Refund, RefundStatus
from gateways.sandbox_ledger import SandboxGatewayRefund


def assert_ledger_invariants(store_url: str) -> None:
    """Refunded + PendingRefund <= Captured + PendingCapture per summary and payment;
    rollups equal their parts; balances within 0..total; one gateway log row per refund;
    and the sandbox gateway's books agree with ours: each approved gateway refund is one
    of our refunds (Processed, or Unknown after a timeout) for the same amount, once."""
    with session_scope(store_url) as session:
        _checked, violations = find_violations(session)
        assert violations == [], violations
        refunds = {r.idempotency_key: r for r in session.exec(select(Refund))}
        gateway_rows = list(session.exec(select(SandboxGatewayRefund)))
    keys = Counter(row.idempotency_key for row in gateway_rows)
    assert all(count == 1 for count in keys.values())
    for row in gateway_rows:
        ours = refunds.get(row.idempotency_key)
        assert ours is not None, f"gateway refund {row.idempotency_key} has no Refund row"
        assert ours.amount == row.amount
        if row.outcome == "approve":
            assert ours.status in (RefundStatus.PROCESSED, RefundStatus.UNKNOWN), (ours.id, ours.status)
        elif row.outcome == "reversed":
            assert ours.status in (RefundStatus.PROCESSED, RefundStatus.REVERSED), (ours.id, ours.status)
        else:
            assert ours.status == RefundStatus.FAILED, (ours.id, ours.status)
    for key, refund in refunds.items():
        if refund.status == RefundStatus.PROCESSED:
            assert keys.get(key) == 1, f"processed refund {refund.id} not booked by the gateway"
    _assert_captures_agree_with_the_gateway(store_url)


def _assert_captures_agree_with_the_gateway(store_url: str) -> None:
    """Each capture the sandbox booked is one of our capture Payments (Processed, or Draft
    after a timeout) for the same amount, once; each Processed capture was booked."""
    from db.models import Payment, PaymentStatus
    from gateways.sandbox_ledger import SandboxGatewayCapture

    with session_scope(store_url) as session:
        captures = {f"om-capture-{p.id}": p for p in session.exec(select(Payment).where(Payment.payment_authorization_id.is_not(None)))}
        booked = list(session.exec(select(SandboxGatewayCapture)))
    keys = Counter(row.idempotency_key for row in booked)
    assert all(count == 1 for count in keys.values())
    for row in booked:
        ours = captures.get(row.idempotency_key)
        assert ours is not None, f"gateway capture {row.idempotency_key} has no Payment"
        assert ours.amount == row.amount
        expected = (PaymentStatus.PROCESSED, PaymentStatus.DRAFT) if row.outcome == "approve" else (PaymentStatus.CANCELED,)
        assert ours.status in expected, (ours.id, ours.status)
    for key, payment in captures.items():
        if payment.status == PaymentStatus.PROCESSED:
            assert keys.get(key) == 1, f"processed capture {payment.id} not booked by the gateway"


# Moved by the scheduled webhook deliveries and executor heartbeats, whatever a request did.
BACKGROUND_TABLES = {"webhook_delivery", "executor_heartbeat"}


def snapshot(store_url: str) -> dict[str, list[dict]]:
    """Every row of every table (but the background ones), to show that a refused request
    changed nothing."""
    from sqlmodel import SQLModel

    tables = {}
    with session_scope(store_url) as session:
        connection = session.connection()
        for table in SQLModel.metadata.sorted_tables:
            if table.name in BACKGROUND_TABLES:
                continue
            rows = connection.execute(table.select().order_by(*table.primary_key.columns)).all()
            tables[table.name] = [tuple(row) for row in rows]
    return tables
