"""Audit Ledger: check the store against the invariants of DESIGN.md §8."""

from collections import defaultdict
from decimal import Decimal

from prefect import get_run_logger, task
from sqlmodel import Session, select

from actions.fields import ActionModel
from db.engine import session_scope
from db.models import CreditMemo, CreditMemoInvApplication, Invoice, OrderPaymentSummary, Payment, PaymentGatewayLog, Refund, RefundStatus
from domain.invariants import check_balance, check_payment_summary, check_sums
from domain.money import ZERO


class LedgerViolation(ActionModel):
    record_id: str
    rule: str
    detail: str


class LedgerAudit(ActionModel):
    records_checked: int
    violations: list[LedgerViolation]


def find_violations(session: Session) -> tuple[int, list[LedgerViolation]]:
    """Every invariant over the whole store: summaries, payments, memos, invoices, refunds, logs."""
    found = []
    checked = 0
    refunds = list(session.exec(select(Refund)))
    by_payment: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for refund in refunds:
        bucket = "refunded" if refund.status == RefundStatus.PROCESSED else (
            "pending" if refund.status in (RefundStatus.PENDING, RefundStatus.UNKNOWN) else "failed")
        by_payment[refund.payment_id][bucket] += refund.amount
    payments = list(session.exec(select(Payment)))
    captured_by_summary: dict[str, Decimal] = defaultdict(lambda: ZERO)
    refunded_by_summary: dict[str, Decimal] = defaultdict(lambda: ZERO)
    pending_by_summary: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for payment in payments:
        checked += 1
        if payment.status == "Processed":
            captured_by_summary[payment.order_payment_summary_id] += payment.amount
        refunded_by_summary[payment.order_payment_summary_id] += payment.refunded_amount
        pending_by_summary[payment.order_payment_summary_id] += payment.pending_refund_amount
        found += check_payment_summary(payment.id, captured=payment.amount, pending_capture=ZERO,
                                       refunded=payment.refunded_amount, pending_refund=payment.pending_refund_amount)
        found += check_sums(payment.id, parent=payment.refunded_amount, children=by_payment[payment.id]["refunded"], what="refunded")
        found += check_sums(payment.id, parent=payment.pending_refund_amount, children=by_payment[payment.id]["pending"], what="pending-refund")
    for ops in session.exec(select(OrderPaymentSummary)):
        checked += 1
        found += check_payment_summary(ops.id, captured=ops.captured_amount, pending_capture=ops.pending_capture_amount,
                                       refunded=ops.refunded_amount, pending_refund=ops.pending_refund_amount)
        found += check_sums(ops.id, parent=ops.captured_amount, children=captured_by_summary[ops.id], what="captured")
        found += check_sums(ops.id, parent=ops.refunded_amount, children=refunded_by_summary[ops.id], what="refunded")
        found += check_sums(ops.id, parent=ops.pending_refund_amount, children=pending_by_summary[ops.id], what="pending-refund")
    applied_from_memo: dict[str, Decimal] = defaultdict(lambda: ZERO)
    applied_to_invoice: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for application in session.exec(select(CreditMemoInvApplication)):
        applied_from_memo[application.credit_memo_id] += application.amount
        applied_to_invoice[application.invoice_id] += application.amount
    refunded_from_memo: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for refund in refunds:
        if refund.credit_memo_id and refund.funding_source == "CreditMemo" and refund.status != RefundStatus.FAILED:
            refunded_from_memo[refund.credit_memo_id] += refund.amount
    for memo in session.exec(select(CreditMemo)):
        checked += 1
        found += check_balance(memo.id, balance=memo.balance, total=memo.total_amount)
        found += check_sums(memo.id, parent=memo.total_amount - memo.balance,
                            children=refunded_from_memo[memo.id] + applied_from_memo[memo.id], what="credit-memo-used")
    for invoice in session.exec(select(Invoice)):
        checked += 1
        found += check_balance(invoice.id, balance=invoice.balance, total=invoice.total_amount)
        found += check_sums(invoice.id, parent=invoice.total_amount - invoice.balance,
                            children=applied_to_invoice[invoice.id], what="invoice-paid")
    logs = defaultdict(int)
    for log in session.exec(select(PaymentGatewayLog)):
        logs[log.sf_ref_number] += 1
    for refund in refunds:
        checked += 1
        if logs.get(refund.idempotency_key, 0) != 1:
            found += check_sums(refund.id, parent=Decimal(1), children=Decimal(logs.get(refund.idempotency_key, 0)), what="gateway-log-rows")
    return checked, [LedgerViolation(record_id=v.record_id, rule=v.rule, detail=v.detail) for v in found]


@task(name="audit-ledger-invariants")
def audit_ledger_invariants() -> LedgerAudit:
    """Check DESIGN.md §8's invariants over the whole store.

    Example:
        ```python
        from prefect import flow
        from actions.audit_ledger import audit_ledger_invariants

        @flow
        def nightly_audit():
            return audit_ledger_invariants()
        ```
    """
    with session_scope() as session:
        checked, violations = find_violations(session)
    get_run_logger().info("checked %d records, %d violations", checked, len(violations))
    return LedgerAudit(records_checked=checked, violations=violations)
