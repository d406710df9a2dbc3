"""Locked reads and ledger moves on the money objects.

Every money operation on an order takes the order summary's row lock first (``FOR
UPDATE`` on PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes writers), so checks
and reservations on its payment summaries cannot interleave, and locks are always taken
in the same order (order summary, then its children): no deadlocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TypeVar

from sqlmodel import Session, SQLModel, col, select

from db.record_events import process_exception_created
from db.models import (
    CreditMemo,
    Invoice,
    OrderPaymentSummary,
    OrderSummary,
    Payment,
    PaymentAuthorization,
    PaymentGateway,
    PaymentGatewayLog,
    ProcessException,
    ProcessingMode,
    Refund,
)
from db.announcements import announce
from db.ids import new_id
from domain.errors import CurrencyMismatchError, InvalidInputError, NotFoundError

T = TypeVar("T", bound=SQLModel)

CAPTURE_KEY_PREFIX = "om-capture-"


def capture_key(payment_id: str) -> str:
    """The idempotency key a capture Payment is sent to its gateway with (and its gateway log's SfRefNumber)."""
    return f"{CAPTURE_KEY_PREFIX}{payment_id}"


def get_or_raise(session: Session, model: type[T], record_id: str, *, for_update: bool = False) -> T:
    """The record, locked if asked; NotFoundError naming the object if there is none."""
    statement = select(model).where(model.id == record_id)
    if for_update:
        statement = statement.with_for_update()
    record = session.exec(statement).first()
    if record is None:
        raise NotFoundError(f"{model.__name__} {record_id} does not exist")
    return record


def lock_order_summary(session: Session, order_summary_id: str) -> OrderSummary:
    return get_or_raise(session, OrderSummary, order_summary_id, for_update=True)


def lock_order_summaries(session: Session, order_summary_ids: Iterable[str]) -> dict[str, OrderSummary]:
    """Several orders' locks in one statement, taken in Id order, so callers that lock more
    than one order cannot deadlock each other (and single-order callers never wait on them
    while holding what they need)."""
    statement = (
        select(OrderSummary).where(col(OrderSummary.id).in_(sorted(set(order_summary_ids))))
        .order_by(col(OrderSummary.id)).with_for_update()
    )
    return {order.id: order for order in session.exec(statement)}


def moves_money_outside(record: Payment | PaymentAuthorization) -> bool:
    """Whether the record's money moves outside the engine: an External payment or
    authorization (Salesforce's ProcessingMode), whether or not it names a gateway for the
    record, and defensively any record without a gateway. No gateway is called for it."""
    return record.processing_mode == ProcessingMode.EXTERNAL or record.payment_gateway_id is None


def gateway_of(session: Session, record: Payment | PaymentAuthorization) -> PaymentGateway | None:
    """The gateway that refunds or captures ``record``; None when its money moves outside the
    engine (``moves_money_outside``): ``GatewayAdapters.for_gateway(None)`` is then the
    External adapter, and the gateway's rules (refund-unsupported methods, Active status,
    one refund at a time, captures once) do not apply."""
    if moves_money_outside(record):
        return None
    return get_or_raise(session, PaymentGateway, record.payment_gateway_id)


def order_payment_summaries(session: Session, order_summary_id: str, *, for_update: bool = False) -> list[OrderPaymentSummary]:
    """The order's payment summaries, oldest first (the allocation's tie-break order)."""
    statement = (
        select(OrderPaymentSummary)
        .where(OrderPaymentSummary.order_summary_id == order_summary_id)
        .order_by(col(OrderPaymentSummary.created_date), col(OrderPaymentSummary.id))
    )
    if for_update:
        statement = statement.with_for_update()
    return list(session.exec(statement))


def refundable_payments(session: Session, order_payment_summary_id: str) -> list[Payment]:
    """The summary's payments, oldest first, locked."""
    statement = (
        select(Payment)
        .where(Payment.order_payment_summary_id == order_payment_summary_id)
        .order_by(col(Payment.created_date), col(Payment.id))
        .with_for_update()
    )
    return list(session.exec(statement))


def credit_memo_of_order(session: Session, credit_memo_id: str, order: OrderSummary, *, for_update: bool) -> CreditMemo:
    return check_credit_memo_of_order(get_or_raise(session, CreditMemo, credit_memo_id, for_update=for_update), order)


def check_credit_memo_of_order(memo: CreditMemo, order: OrderSummary) -> CreditMemo:
    """The memo, if it belongs to ``order`` and is in its currency."""
    if memo.order_summary_id != order.id:
        raise InvalidInputError(f"credit memo {memo.id} belongs to another order summary")
    if memo.currency_iso_code != order.currency_iso_code:
        raise CurrencyMismatchError(f"credit memo {memo.id} is in {memo.currency_iso_code}, the order in {order.currency_iso_code}")
    return memo


def invoices_of_order(session: Session, invoice_ids: Sequence[str], order: OrderSummary, *, for_update: bool) -> list[Invoice]:
    if len(set(invoice_ids)) != len(invoice_ids):
        raise InvalidInputError("invoicesToPay names the same invoice twice")
    invoices = []
    for invoice_id in invoice_ids:
        invoice = get_or_raise(session, Invoice, invoice_id, for_update=for_update)
        if invoice.order_summary_id != order.id:
            raise InvalidInputError(f"invoice {invoice_id} belongs to another order summary")
        if invoice.currency_iso_code != order.currency_iso_code:
            raise CurrencyMismatchError(f"invoice {invoice_id} is in {invoice.currency_iso_code}, the order in {order.currency_iso_code}")
        invoices.append(invoice)
    return invoices


def reserve_refund(session: Session, ops: OrderPaymentSummary, payment: Payment, amount: Decimal) -> None:
    """Hold ``amount`` as pending refund on the summary and the payment."""
    ops.pending_refund_amount += amount
    payment.pending_refund_amount += amount
    session.add_all([ops, payment])


def complete_refund(session: Session, refund: Refund, *, succeeded: bool) -> None:
    """Move a reserved refund to refunded (success) or release it (failure)."""
    ops = session.get(OrderPaymentSummary, refund.order_payment_summary_id)
    payment = session.get(Payment, refund.payment_id)
    ops.pending_refund_amount -= refund.amount
    payment.pending_refund_amount -= refund.amount
    if succeeded:
        ops.refunded_amount += refund.amount
        payment.refunded_amount += refund.amount
    elif refund.credit_memo_id and refund.funding_source == "CreditMemo":
        memo = session.get(CreditMemo, refund.credit_memo_id)
        memo.balance += refund.amount  # the unrefunded balance goes back on the credit memo
        session.add(memo)
    session.add_all([ops, payment])


def add_process_exception(
    session: Session, *, attached_to_id: str, order_summary_id: str | None, message: str,
    description: str | None = None, background_operation_id: str | None = None, severity: str = "High",
) -> ProcessException:
    exception = ProcessException(
        id=new_id("ProcessException"),
        attached_to_id=attached_to_id,
        order_summary_id=order_summary_id,
        message=message[:255],
        description=description,
        background_operation_id=background_operation_id,
        severity=severity,
    )
    session.add(exception)
    announce(session, lambda: process_exception_created(exception))
    return exception


def process_exception_ids_of(session: Session, operation_id: str, attached_to_ids: Sequence[str]) -> list[str]:
    """The ProcessExceptions an operation filed on these records (its refunds, its
    captures) in every attempt of it, oldest first: a resumed run reports what an earlier
    attempt filed too."""
    if not attached_to_ids:
        return []
    return list(session.exec(
        select(ProcessException.id).where(ProcessException.background_operation_id == operation_id,
                                          col(ProcessException.attached_to_id).in_(list(attached_to_ids)))
        .order_by(col(ProcessException.created_date), col(ProcessException.id))
    ))


def gateway_log_for(session: Session, refund: Refund) -> PaymentGatewayLog:
    statement = select(PaymentGatewayLog).where(PaymentGatewayLog.sf_ref_number == refund.idempotency_key)
    return session.exec(statement).one()
