"""What one operation (flow run) changed in the store, in words: for an operator reading an
operation that ended in Error after an infrastructure fault, so they know which money
moved before deciding anything (and never retry what already happened)."""

from __future__ import annotations

from uuid import UUID

from sqlmodel import col, select

from db.engine import session_scope
from db.models import (
    ChangeOrder, CreditMemo, CreditMemoInvApplication, Invoice, OperationStep, PaymentLineInvoice, Refund,
)


def effects_summary(operation_id: UUID | str, *, store_url: str | None = None) -> str:
    """One sentence per kind of record the operation made, or that it made none.

    Example:
        ```python
        effects_summary("0b6c1c3e-...")
        # 'Effects so far: refunds 10.00 USD Processed (0Ri1...), 5.00 USD Unknown (0Ri2...).'
        ```
    """
    op = str(operation_id)
    try:
        with session_scope(store_url) as session:
            parts = []
            # a composition's steps each act under an operation id of their own
            ops = [op, *session.exec(select(OperationStep.id).where(OperationStep.operation_id == op)).all()]
            refunds = session.exec(select(Refund).where(col(Refund.background_operation_id).in_(ops))).all()
            if refunds:
                parts.append("refunds " + ", ".join(
                    f"{r.amount} {r.currency_iso_code} {r.status.value} ({r.id}, payment {r.payment_id})" for r in refunds))
            applied = session.exec(select(PaymentLineInvoice).where(col(PaymentLineInvoice.background_operation_id).in_(ops))).all()
            if applied:
                parts.append("payments applied to invoices " + ", ".join(
                    f"{a.amount} {a.currency_iso_code} from {a.payment_id} to {a.invoice_id}" for a in applied))
            memo_paid = session.exec(select(CreditMemoInvApplication).where(
                col(CreditMemoInvApplication.background_operation_id).in_(ops))).all()
            if memo_paid:
                parts.append("credit applied to invoices " + ", ".join(
                    f"{a.amount} {a.currency_iso_code} to {a.invoice_id}" for a in memo_paid))
            for table, label in ((CreditMemo, "credit memo"), (Invoice, "invoice"), (ChangeOrder, "change order")):
                made = session.exec(select(table).where(col(table.background_operation_id).in_(ops))).all()
                if made:
                    parts.append(f"{label} " + ", ".join(m.id for m in made))
    except Exception as exc:  # the store itself may be what is down
        return f"What it changed could not be read ({type(exc).__name__}); see the store by operation id {op}."
    if not parts:
        return "It changed nothing."
    return "Effects so far: " + "; ".join(parts) + "."
