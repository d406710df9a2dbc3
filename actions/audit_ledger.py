"""Audit Ledger: check the store against the invariants of DESIGN.md §8."""

from collections import Counter, defaultdict
from decimal import Decimal

from prefect import get_run_logger, task
from sqlalchemy import and_, or_, text
from sqlmodel import Session, select

from actions.fields import ActionModel
from actions.artifacts import Progress
from db.engine import is_postgresql, session_scope
from db.models import (
    ChangeOrder, ChangeOrderItem, ChangeOrderType, CreditMemo, CreditMemoInvApplication, CreditMemoLine, Invoice, InvoiceLine,
    OrderItemSummary, OrderPaymentSummary, OrderSummary, Payment, PaymentApplicationType, PaymentAuthorization, PaymentGatewayLog,
    PaymentLineInvoice, PaymentStatus, ProcessingMode, Refund, RefundStatus, ReturnOrder, ReturnOrderLineItem,
)
from domain.invariants import Violation, check_balance, check_payment_summary, check_sums
from domain.money import ZERO


class LedgerViolation(ActionModel):
    record_id: str
    rule: str
    detail: str


class LedgerAudit(ActionModel):
    records_checked: int
    violations: list[LedgerViolation]


def _sum_by(rows, key, value=lambda r: r.amount, where=lambda r: True) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for row in rows:
        if where(row):
            totals[key(row)] += value(row)
    return totals


def _is(*statuses):
    return lambda row: row.status in statuses


ORDERS_PER_BATCH = 1000


def find_violations(session: Session, *, orders_per_batch: int = ORDERS_PER_BATCH) -> tuple[int, list[LedgerViolation]]:
    """Every invariant over the whole store: each rolled-up amount equals the sum of its
    parts, nothing is refunded or captured beyond what it may be, balances stay within
    0..total and add up, and every refund has exactly one gateway log row.

    Every invariant is about one order's records, so the store is read
    ``orders_per_batch`` orders at a time: memory stays flat however large the store.

    On PostgreSQL, a session that has not begun yet reads one snapshot (repeatable read):
    read committed would let an operation's commit land between two of these reads and
    show a rollup that never existed.
    """
    if not session.in_transaction() and is_postgresql(session):
        session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
    checked, found = 0, []
    after = ""
    while True:
        last = session.exec(select(OrderSummary.id).where(OrderSummary.id > after).order_by(OrderSummary.id)
                            .offset(orders_per_batch - 1).limit(1)).first()
        batch_checked, batch_found = _violations_of_orders(session, after, last)
        checked += batch_checked
        found += batch_found
        if last is None:
            return checked, found
        after = last


def _gateway_log_counts(session: Session, keys: list[str]) -> Counter:
    counts: Counter = Counter()
    for start in range(0, len(keys), 1000):
        chunk = keys[start:start + 1000]
        counts.update(session.exec(select(PaymentGatewayLog.sf_ref_number).where(PaymentGatewayLog.sf_ref_number.in_(chunk))))
    return counts


def _document_tax_violations(session: Session, documents, link, tax, document_ids) -> list[Violation]:
    """A credit memo's or invoice's tax lies within 0..its total with tax and, if it has
    lines, is the sum of their tax (a document made by sObject create has none: its tax is
    what its creator gave)."""
    lines = session.execute(select(link, tax).where(link.in_(document_ids))).all()
    taxes = _sum_by(lines, lambda line: line[0], lambda line: line[1])
    found = []
    for document in documents:
        found += check_balance(document.id, balance=document.total_tax_amount, total=document.total_amount, what="tax")
        if document.id in taxes:
            found += check_sums(document.id, parent=document.total_tax_amount, children=taxes[document.id], what="document-tax")
    return found


def _violations_of_orders(session: Session, after: str, last: str | None) -> tuple[int, list[LedgerViolation]]:
    """``find_violations`` for the records of the orders whose ids are after ``after`` and
    up to ``last`` (to the end if None), read as plain rows."""

    def of_batch(order_summary_id):
        return and_(order_summary_id > after, order_summary_id <= last) if last is not None else order_summary_id > after

    of_orders = select(OrderPaymentSummary.id).where(of_batch(OrderPaymentSummary.order_summary_id))
    memo_ids = select(CreditMemo.id).where(of_batch(CreditMemo.order_summary_id))
    invoice_ids = select(Invoice.id).where(of_batch(Invoice.order_summary_id))
    refunds = list(session.execute(select(Refund.__table__).where(Refund.order_payment_summary_id.in_(of_orders))))
    payments = list(session.execute(select(Payment.__table__).where(Payment.order_payment_summary_id.in_(of_orders))))
    authorizations = list(session.execute(
        select(PaymentAuthorization.__table__).where(PaymentAuthorization.order_payment_summary_id.in_(of_orders))))
    summaries = list(session.execute(select(OrderPaymentSummary.__table__).where(of_batch(OrderPaymentSummary.order_summary_id))))
    memos = list(session.execute(select(CreditMemo.__table__).where(of_batch(CreditMemo.order_summary_id))))
    invoices = list(session.execute(select(Invoice.__table__).where(of_batch(Invoice.order_summary_id))))
    memo_applications = list(session.execute(select(CreditMemoInvApplication.__table__).where(or_(
        CreditMemoInvApplication.credit_memo_id.in_(memo_ids), CreditMemoInvApplication.invoice_id.in_(invoice_ids)))))
    payment_applications = list(session.execute(select(PaymentLineInvoice.__table__).where(or_(
        PaymentLineInvoice.payment_id.in_(select(Payment.id).where(Payment.order_payment_summary_id.in_(of_orders))),
        PaymentLineInvoice.invoice_id.in_(invoice_ids)))))
    logs = _gateway_log_counts(session, [r.idempotency_key for r in refunds]
                               + [f"om-capture-{p.id}" for p in payments if p.payment_authorization_id])

    pending = (RefundStatus.PENDING, RefundStatus.UNKNOWN)
    found = []
    refunded = _sum_by(refunds, lambda r: r.payment_id, where=_is(RefundStatus.PROCESSED))
    pending_refund = _sum_by(refunds, lambda r: r.payment_id, where=_is(*pending))
    applied = _sum_by(payment_applications, lambda a: a.payment_id, where=lambda a: a.type == PaymentApplicationType.APPLIED)
    for record in [*payments, *authorizations]:  # Salesforce-mode money moves through a gateway: it must name one
        if record.processing_mode == ProcessingMode.SALESFORCE and record.payment_gateway_id is None:
            found.append(Violation(record.id, "salesforce-mode-without-gateway",
                                   "ProcessingMode Salesforce but no PaymentGatewayId"))
    for payment in payments:
        found += check_payment_summary(payment.id, captured=payment.amount, pending_capture=ZERO,
                                       refunded=payment.refunded_amount, pending_refund=payment.pending_refund_amount)
        found += check_sums(payment.id, parent=payment.refunded_amount, children=refunded[payment.id], what="refunded")
        found += check_sums(payment.id, parent=payment.pending_refund_amount, children=pending_refund[payment.id], what="pending-refund")
        found += check_sums(payment.id, parent=payment.applied_amount, children=applied[payment.id], what="applied")
        found += check_balance(payment.id, balance=payment.amount - payment.applied_amount, total=payment.amount)

    captures = [p for p in payments if p.payment_authorization_id]
    captured_from = _sum_by(captures, lambda p: p.payment_authorization_id, where=_is(PaymentStatus.PROCESSED))
    capturing_from = _sum_by(captures, lambda p: p.payment_authorization_id, where=_is(PaymentStatus.DRAFT))
    for authorization in authorizations:
        found += check_balance(authorization.id, total=authorization.amount,
                               balance=authorization.amount - authorization.captured_amount - authorization.pending_capture_amount)
        found += check_sums(authorization.id, parent=authorization.captured_amount, children=captured_from[authorization.id],
                            what="captured")
        found += check_sums(authorization.id, parent=authorization.pending_capture_amount,
                            children=capturing_from[authorization.id], what="pending-capture")

    processed = _is(PaymentStatus.PROCESSED)
    per_summary = {
        "captured": (_sum_by(payments, lambda p: p.order_payment_summary_id, where=processed), "captured_amount"),
        "refunded": (_sum_by(payments, lambda p: p.order_payment_summary_id, lambda p: p.refunded_amount), "refunded_amount"),
        "pending-refund": (_sum_by(payments, lambda p: p.order_payment_summary_id, lambda p: p.pending_refund_amount),
                           "pending_refund_amount"),
        "authorized": (_sum_by(authorizations, lambda a: a.order_payment_summary_id, where=processed), "authorization_amount"),
        "pending-capture": (_sum_by(authorizations, lambda a: a.order_payment_summary_id, lambda a: a.pending_capture_amount),
                            "pending_capture_amount"),
    }
    for ops in summaries:
        found += check_payment_summary(ops.id, captured=ops.captured_amount, pending_capture=ops.pending_capture_amount,
                                       refunded=ops.refunded_amount, pending_refund=ops.pending_refund_amount)
        for what, (parts, field) in per_summary.items():
            found += check_sums(ops.id, parent=getattr(ops, field), children=parts[ops.id], what=what)

    from_memo = _sum_by(memo_applications, lambda a: a.credit_memo_id)
    refunded_from_memo = _sum_by(refunds, lambda r: r.credit_memo_id or "",
                                 where=lambda r: r.funding_source == "CreditMemo" and r.status not in (RefundStatus.FAILED, RefundStatus.REVERSED))
    for memo in memos:
        found += check_balance(memo.id, balance=memo.balance, total=memo.total_amount)
        found += check_sums(memo.id, parent=memo.total_amount - memo.balance,
                            children=refunded_from_memo[memo.id] + from_memo[memo.id], what="credit-memo-used")
    paid_by_memo = _sum_by(memo_applications, lambda a: a.invoice_id)
    paid_by_payments = _sum_by(payment_applications, lambda a: a.invoice_id,
                               where=lambda a: a.type in (PaymentApplicationType.APPLIED, PaymentApplicationType.PENDING))
    for invoice in invoices:
        found += check_balance(invoice.id, balance=invoice.balance, total=invoice.total_amount)
        found += check_sums(invoice.id, parent=invoice.total_amount - invoice.balance,
                            children=paid_by_memo[invoice.id] + paid_by_payments[invoice.id], what="invoice-paid")

    found += _document_tax_violations(session, memos, CreditMemoLine.credit_memo_id, CreditMemoLine.tax_amount, memo_ids)
    found += _document_tax_violations(session, invoices, InvoiceLine.invoice_id, InvoiceLine.tax_amount, invoice_ids)

    for refund in refunds:
        found += check_sums(refund.id, parent=Decimal(1), children=Decimal(logs[refund.idempotency_key]), what="gateway-log-rows")
    for capture in captures:
        found += check_sums(capture.id, parent=Decimal(1), children=Decimal(logs[f"om-capture-{capture.id}"]),
                            what="gateway-log-rows")

    items = list(session.execute(select(OrderItemSummary.__table__).where(of_batch(OrderItemSummary.order_summary_id))))
    for item in items:
        for rule, ok in (
            ("canceled-and-fulfilled-within-ordered", item.quantity_canceled + item.quantity_fulfilled <= item.quantity_ordered),
            ("return-initiated-within-fulfilled", item.quantity_return_initiated <= item.quantity_fulfilled),
            ("returned-within-return-initiated", item.quantity_returned <= item.quantity_return_initiated),
        ):
            if not ok:
                found.append(Violation(item.id, rule, f"ordered {item.quantity_ordered}, canceled {item.quantity_canceled}, "
                                       f"fulfilled {item.quantity_fulfilled}, return initiated "
                                       f"{item.quantity_return_initiated}, returned {item.quantity_returned}"))
    change_order_ids = select(ChangeOrder.id).where(of_batch(ChangeOrder.order_summary_id))
    change_items = list(session.execute(select(ChangeOrderItem.__table__).where(ChangeOrderItem.change_order_id.in_(change_order_ids))))
    item_amounts = _sum_by(change_items, lambda i: i.change_order_id)
    item_taxes = _sum_by(change_items, lambda i: i.change_order_id, lambda i: i.tax_amount)
    change_orders = list(session.execute(select(ChangeOrder.__table__).where(of_batch(ChangeOrder.order_summary_id))))
    kind_of = {c.id: c.type for c in change_orders}
    for kind, attribute in ((ChangeOrderType.CANCEL, "quantity_canceled"), (ChangeOrderType.RETURN, "quantity_returned")):
        units = _sum_by(change_items, lambda i: i.order_item_summary_id or "", lambda i: i.quantity,
                        where=lambda i, kind=kind: kind_of.get(i.change_order_id) == kind)
        for item in items:
            found += check_sums(item.id, parent=getattr(item, attribute), children=units[item.id],
                                what=f"item-{kind.value.lower()}-units")
    return_lines = list(session.execute(select(ReturnOrderLineItem.__table__).where(ReturnOrderLineItem.return_order_id.in_(
        select(ReturnOrder.id).where(of_batch(ReturnOrder.order_summary_id))))))
    still_expected = _sum_by(return_lines, lambda r: r.order_item_summary_id or "", lambda r: r.quantity_expected,
                             where=lambda r: r.processed_date is None)
    for item in items:  # units on return: still expected, or returned
        found += check_sums(item.id, parent=item.quantity_return_initiated,
                            children=still_expected[item.id] + item.quantity_returned, what="item-return-initiated-units")
    for line in return_lines:
        if line.quantity_returned + line.quantity_rejected != line.quantity_received:
            found.append(Violation(line.id, "received-returned-or-rejected", f"received {line.quantity_received}, returned "
                                   f"{line.quantity_returned}, rejected {line.quantity_rejected}"))
    for change_order in change_orders:
        credits = change_order.type != ChangeOrderType.FEE  # Cancel/Return credit (>= 0), Fee charges (<= 0)
        if (change_order.total_amount + change_order.total_tax_amount >= 0) != credits:
            found.append(Violation(change_order.id, "change-order-sign",
                                   f"{change_order.type} change order of {change_order.total_amount + change_order.total_tax_amount}"))
        found += check_sums(change_order.id, parent=change_order.total_amount, children=item_amounts[change_order.id], what="change-amount")
        found += check_sums(change_order.id, parent=change_order.total_tax_amount, children=item_taxes[change_order.id],
                            what="change-tax")
    credited = _sum_by(change_orders, lambda c: c.credit_memo_id or "", lambda c: c.total_amount + c.total_tax_amount,
                       where=lambda c: c.credit_memo_id is not None)
    for memo in memos:
        if memo.id in credited:
            found += check_sums(memo.id, parent=memo.total_amount, children=credited[memo.id], what="credit-memo-from-changes")
    charged = _sum_by(change_orders, lambda c: c.invoice_id or "", lambda c: -(c.total_amount + c.total_tax_amount),
                      where=lambda c: c.invoice_id is not None)
    for invoice in invoices:
        if invoice.id in charged:
            found += check_sums(invoice.id, parent=invoice.total_amount, children=charged[invoice.id], what="invoice-from-changes")

    checked = len(items) + len(return_lines) + len(change_orders) + len(refunds) + len(payments) + len(authorizations) + len(summaries) + len(memos) + len(invoices)
    return checked, [LedgerViolation(record_id=v.record_id, rule=v.rule, detail=v.detail) for v in found]


@task(name="audit-ledger-invariants", persist_result=False)
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
    progress = Progress("Checking the ledger invariants")
    with session_scope() as session:
        if session.get_bind().dialect.name == "postgresql":
            # One snapshot for all the reads, or live traffic between them looks like drift.
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        checked, violations = find_violations(session)
    get_run_logger().info("checked %d records, %d violations", checked, len(violations))
    progress.update(1, 1)
    return LedgerAudit(records_checked=checked, violations=violations)
