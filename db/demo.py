"""A small demo order book, so a new user can call the engine within a minute."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlmodel import Session, select

from db.models import (
    CreditMemoCreate, InvoiceCreate, OrderItemSummary, OrderItemSummaryCreate, OrderPaymentSummaryCreate, OrderSummary,
    OrderSummaryCreate, PaymentAuthorizationCreate, PaymentCreate, PaymentGatewayCreate, PaymentMethodType,
)
from db.sobjects import (
    create_credit_memo, create_invoice, create_order_item_summary, create_order_payment_summary, create_order_summary,
    create_payment, create_payment_authorization, create_payment_gateway,
)

DEMO_GATEWAY_BLOCK = "om-demo-sandbox"


@dataclass(frozen=True)
class DemoOrder:
    order_summary_id: str
    order_payment_summary_ids: list[str]
    credit_memo_id: str
    fee_invoice_id: str
    lifecycle_order_summary_id: str = ""
    lifecycle_item_ids: tuple[str, ...] = ()


def load_lifecycle_demo(session: Session, gateway_id: str) -> tuple[str, tuple[str, ...]]:
    """Create (once) an order to take through its life: 3 shirts (20.00, tax 6.00) and 2
    mugs (15.00, tax 3.00), 40.00 captured by one card and 59.00 authorized on another."""
    existing = session.exec(select(OrderSummary).where(OrderSummary.order_number == "DEMO-00002")).first()
    if existing is not None:
        items = session.exec(select(OrderItemSummary).where(OrderItemSummary.order_summary_id == existing.id)
                             .order_by(OrderItemSummary.name.desc()))
        return existing.id, tuple(item.id for item in items)
    order = create_order_summary(session=session, obj_in=OrderSummaryCreate(order_number="DEMO-00002", currency_iso_code="USD"))
    session.flush()
    items = tuple(create_order_item_summary(session=session, obj_in=OrderItemSummaryCreate(
        order_summary_id=order.id, name=name, unit_price=Decimal(price), quantity_ordered=Decimal(quantity),
        total_tax_amount=Decimal(tax))).id for name, price, quantity, tax in (("shirt", "20", "3", "6"), ("mug", "15", "2", "3")))
    paid, held = (create_order_payment_summary(session=session, obj_in=OrderPaymentSummaryCreate(
        order_summary_id=order.id, method=PaymentMethodType.CARD)) for _ in range(2))
    session.flush()
    create_payment(session=session, obj_in=PaymentCreate(order_payment_summary_id=paid.id, payment_gateway_id=gateway_id,
                                                         amount=Decimal("40.00")))
    create_payment_authorization(session=session, obj_in=PaymentAuthorizationCreate(
        order_payment_summary_id=held.id, payment_gateway_id=gateway_id, amount=Decimal("59.00")))
    session.flush()
    return order.id, items


def load_demo(session: Session) -> DemoOrder:
    """Create (once) an order paid 60.00 + 40.00 by two cards, a 30.00 credit memo and a
    5.00 return-fee invoice, on a sandbox gateway configured by the block
    ``om-demo-sandbox`` (13.13 is declined, 66.60 times out)."""
    existing = session.exec(select(OrderSummary).where(OrderSummary.order_number == "DEMO-00001")).first()
    if existing is not None:
        from db.models import CreditMemo, Invoice, OrderPaymentSummary

        from db.models import PaymentGateway

        gateway = session.exec(select(PaymentGateway).where(PaymentGateway.merchant_credential_name == DEMO_GATEWAY_BLOCK)).first()
        lifecycle, items = load_lifecycle_demo(session, gateway.id)
        return DemoOrder(
            lifecycle_order_summary_id=lifecycle, lifecycle_item_ids=items,
            order_summary_id=existing.id,
            order_payment_summary_ids=[o.id for o in session.exec(select(OrderPaymentSummary).where(OrderPaymentSummary.order_summary_id == existing.id))],
            credit_memo_id=session.exec(select(CreditMemo).where(CreditMemo.order_summary_id == existing.id)).first().id,
            fee_invoice_id=session.exec(select(Invoice).where(Invoice.order_summary_id == existing.id)).first().id,
        )
    gateway = create_payment_gateway(session=session, obj_in=PaymentGatewayCreate(
        payment_gateway_name="Demo sandbox", merchant_credential_name=DEMO_GATEWAY_BLOCK))
    order = create_order_summary(session=session, obj_in=OrderSummaryCreate(order_number="DEMO-00001", currency_iso_code="USD"))
    session.flush()
    summaries = []
    for amount in (Decimal("60.00"), Decimal("40.00")):
        ops = create_order_payment_summary(session=session, obj_in=OrderPaymentSummaryCreate(
            order_summary_id=order.id, method=PaymentMethodType.CARD))
        session.flush()
        create_payment(session=session, obj_in=PaymentCreate(
            order_payment_summary_id=ops.id, payment_gateway_id=gateway.id, amount=amount))
        summaries.append(ops.id)
    memo = create_credit_memo(session=session, obj_in=CreditMemoCreate(
        reference_entity_id=order.id, total_amount=Decimal("30.00"), description="Returned: 1 x blue mug"))
    fee = create_invoice(session=session, obj_in=InvoiceCreate(
        reference_entity_id=order.id, total_amount=Decimal("5.00"), description="Return fee"))
    session.flush()
    lifecycle, items = load_lifecycle_demo(session, gateway.id)
    return DemoOrder(order.id, summaries, memo.id, fee.id, lifecycle, items)
