"""Test data through the same repository functions the sObject API uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlmodel import Session

from db.models import (
    CreditMemoCreate, GatewayProvider, InvoiceCreate, OrderPaymentSummaryCreate, OrderSummaryCreate, PaymentCreate,
    PaymentGatewayCreate,
)
from db.sobjects import (
    create_credit_memo, create_invoice, create_order_payment_summary, create_order_summary, create_payment,
    create_payment_gateway,
)


@dataclass
class OrderFixture:
    order_summary_id: str
    gateway_id: str
    summaries: list[str] = field(default_factory=list)  # order payment summary ids, oldest first
    payments: dict[str, list[str]] = field(default_factory=dict)
    credit_memo_id: str | None = None
    invoice_ids: list[str] = field(default_factory=list)


def make_order(
    session: Session,
    *,
    payments: list[list[str] | str],
    credit_memo: str | None = None,
    invoices: list[str] = (),
    currency: str = "USD",
    gateway_block: str | None = None,
) -> OrderFixture:
    """An order whose payment summaries are paid as given: ``["60.00", ["30.00", "10.00"]]``
    makes two summaries, the second with two payments."""
    gateway = create_payment_gateway(session=session, obj_in=PaymentGatewayCreate(
        payment_gateway_name="test sandbox", gateway_provider=GatewayProvider.SANDBOX, merchant_credential_name=gateway_block))
    order = create_order_summary(session=session, obj_in=OrderSummaryCreate(order_number="T-1", currency_iso_code=currency))
    session.flush()
    result = OrderFixture(order_summary_id=order.id, gateway_id=gateway.id)
    for amounts in payments:
        ops = create_order_payment_summary(session=session, obj_in=OrderPaymentSummaryCreate(order_summary_id=order.id))
        session.flush()
        result.summaries.append(ops.id)
        result.payments[ops.id] = []
        for amount in [amounts] if isinstance(amounts, str) else amounts:
            payment = create_payment(session=session, obj_in=PaymentCreate(
                order_payment_summary_id=ops.id, payment_gateway_id=gateway.id, amount=Decimal(amount)))
            session.flush()
            result.payments[ops.id].append(payment.id)
    if credit_memo is not None:
        result.credit_memo_id = create_credit_memo(session=session, obj_in=CreditMemoCreate(
            reference_entity_id=order.id, total_amount=Decimal(credit_memo))).id
    for amount in invoices:
        result.invoice_ids.append(create_invoice(session=session, obj_in=InvoiceCreate(
            reference_entity_id=order.id, total_amount=Decimal(amount))).id)
    session.flush()
    return result


def make_order_with_items(
    store_url: str, *, payments: tuple[str, ...], items: tuple[tuple[str, str, str, str], ...],
    gateway_block: str | None = None,
) -> tuple[OrderFixture, list[str]]:
    """An order (make_order, in its own transaction) with order items given as
    ``(name, unit price, quantity ordered, total tax)``; returns it and the item ids."""
    from db.engine import session_scope
    from db.models import OrderItemSummaryCreate
    from db.sobjects import create_order_item_summary

    with session_scope(store_url) as session:
        order = make_order(session, payments=list(payments), gateway_block=gateway_block)
        ids = [create_order_item_summary(session=session, obj_in=OrderItemSummaryCreate(
            order_summary_id=order.order_summary_id, name=name, unit_price=Decimal(price), quantity_ordered=Decimal(qty),
            total_tax_amount=Decimal(tax))).id for name, price, qty, tax in items]
    return order, ids
