"""What each record change announces: ``om.<record>.<verb>``, modelled on Salesforce Order
Management's platform events (OrderSummaryCreatedEvent, ProcessExceptionEvent, ...).

The record is the event's resource; ``related`` names, by role, every record a next step
needs (the order summary always); the payload carries ids and amounts as exact strings
under Salesforce's field names, so an automation can template a run's parameters from it.
The README's event table lists them all.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from sqlmodel import Session, select

from db.announcements import RecordEvent, announce
from db.models import (
    ChangeOrder, CreditMemo, CreditMemoInvApplication, Invoice, Payment, PaymentApplicationType, PaymentLineInvoice,
    ProcessException, ReconciliationFinding, Refund, ReturnOrder,
)
from domain.money import quantize

ROLE_BY_PREFIX: dict[str, str] = {
    "1Os": "order-summary", "0aP": "order-payment-summary", "0a3": "payment", "0a4": "refund",
    "50g": "credit-memo", "3tt": "invoice", "801": "change-order", "0RO": "return-order",
    "0Xc": "payment-authorization", "0b0": "payment-gateway", "a0R": "reconciliation",
}
"""The role of a record in an event, by its Id's key prefix (db/ids.py)."""


def _money(amount, currency: str) -> str:
    return str(quantize(amount, currency, strict=False))


def record_name(object_name: str) -> str:
    """``OrderPaymentSummary`` -> ``order-payment-summary``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", object_name).lower()


def _ids(*ids: str | None) -> tuple[str, ...]:
    return tuple(i for i in ids if i)


def change_order_created(change_order: ChangeOrder, *, return_order_id: str | None = None) -> RecordEvent:
    return RecordEvent(
        record="change-order", verb="created", record_id=change_order.id,
        related={"order-summary": (change_order.order_summary_id,), "return-order": _ids(return_order_id)},
        payload={
            "changeOrderId": change_order.id, "orderSummaryId": change_order.order_summary_id,
            "type": str(change_order.type), "returnOrderId": return_order_id,
            "totalAmount": _money(change_order.total_amount, change_order.currency_iso_code),
            "totalTaxAmount": _money(change_order.total_tax_amount, change_order.currency_iso_code),
            "currencyIsoCode": change_order.currency_iso_code,
        },
    )


def credit_memo_created(memo: CreditMemo, change_orders: Iterable[ChangeOrder]) -> RecordEvent:
    change_orders = list(change_orders)
    return RecordEvent(
        record="credit-memo", verb="created", record_id=memo.id,
        related={"order-summary": (memo.order_summary_id,), "change-order": tuple(c.id for c in change_orders)},
        payload={
            "creditMemoId": memo.id, "orderSummaryId": memo.order_summary_id,
            "changeOrderIds": ",".join(c.id for c in change_orders),
            "changeOrderTypes": ",".join(sorted({str(c.type) for c in change_orders})),
            "totalAmount": _money(memo.total_amount, memo.currency_iso_code),
            "balance": _money(memo.balance, memo.currency_iso_code), "currencyIsoCode": memo.currency_iso_code,
        },
    )


def invoice_created(invoice: Invoice, *, source: str, change_order_ids: Iterable[str] = ()) -> RecordEvent:
    """``source``: Fulfillment (shipped units) or ChangeOrders (fees)."""
    change_order_ids = tuple(change_order_ids)
    return RecordEvent(
        record="invoice", verb="created", record_id=invoice.id,
        related={"order-summary": (invoice.order_summary_id,), "change-order": change_order_ids},
        payload={
            "invoiceId": invoice.id, "orderSummaryId": invoice.order_summary_id, "source": source,
            "changeOrderIds": ",".join(change_order_ids),
            "totalAmount": _money(invoice.total_amount, invoice.currency_iso_code),
            "balance": _money(invoice.balance, invoice.currency_iso_code), "currencyIsoCode": invoice.currency_iso_code,
        },
        labels={"om.source": source, "om.balance-due": "true" if invoice.balance > 0 else "false"},
    )


def invoice_paid(invoice: Invoice, *, paid_by: Iterable[str] = ()) -> RecordEvent:
    """``paid_by``: the payments and credit memos whose money settled it."""
    paid_by = tuple(paid_by)
    related = {"order-summary": (invoice.order_summary_id,)}
    for record_id in paid_by:
        role = ROLE_BY_PREFIX.get(record_id[:3], "record")
        related[role] = related.get(role, ()) + (record_id,)
    return RecordEvent(
        record="invoice", verb="paid", record_id=invoice.id, related=related,
        payload={"invoiceId": invoice.id, "orderSummaryId": invoice.order_summary_id,
                 "totalAmount": _money(invoice.total_amount, invoice.currency_iso_code),
                 "currencyIsoCode": invoice.currency_iso_code},
    )


def announce_invoice_paid(session: Session, invoice: Invoice) -> None:
    """``om.invoice.paid`` on commit if the invoice then owes nothing and no capture for it
    is still awaiting the gateway (its id is the invoice's, so telling it twice is harmless)."""

    def render() -> RecordEvent | None:
        if invoice.balance != 0 or invoice.total_amount <= 0:
            return None
        applications = session.exec(select(PaymentLineInvoice).where(PaymentLineInvoice.invoice_id == invoice.id)).all()
        if any(a.type == PaymentApplicationType.PENDING for a in applications):
            return None
        memos = session.exec(select(CreditMemoInvApplication.credit_memo_id)
                             .where(CreditMemoInvApplication.invoice_id == invoice.id)).all()
        return invoice_paid(invoice, paid_by=[*sorted({a.payment_id for a in applications}), *sorted(set(memos))])

    announce(session, render)


def return_order_created(return_order: ReturnOrder, *, line_count: int) -> RecordEvent:
    return RecordEvent(
        record="return-order", verb="created", record_id=return_order.id,
        related={"order-summary": (return_order.order_summary_id,)},
        payload={"returnOrderId": return_order.id, "orderSummaryId": return_order.order_summary_id,
                 "status": str(return_order.status), "lineCount": str(line_count),
                 "currencyIsoCode": return_order.currency_iso_code},
    )


def return_order_items_returned(
    return_order: ReturnOrder, *, operation_id: str | None, change_order_id: str | None, fee_change_order_id: str | None,
) -> RecordEvent:
    return RecordEvent(
        record="return-order", verb="items-returned", record_id=return_order.id,
        related={"order-summary": (return_order.order_summary_id,),
                 "change-order": _ids(change_order_id, fee_change_order_id)},
        payload={"returnOrderId": return_order.id, "orderSummaryId": return_order.order_summary_id,
                 "status": str(return_order.status), "changeOrderId": change_order_id,
                 "feeChangeOrderId": fee_change_order_id},
        # one event per processing: a retried operation tells the same one again
        discriminator=operation_id or uuid.uuid4().hex,
    )


def payment_captured(payment: Payment, *, order_summary_id: str, invoice_id: str | None) -> RecordEvent:
    return RecordEvent(
        record="payment", verb="captured", record_id=payment.id,
        related={"order-summary": (order_summary_id,), "order-payment-summary": (payment.order_payment_summary_id,),
                 "invoice": _ids(invoice_id)},
        payload={"paymentId": payment.id, "orderSummaryId": order_summary_id,
                 "orderPaymentSummaryId": payment.order_payment_summary_id, "invoiceId": invoice_id,
                 "amount": _money(payment.amount, payment.currency_iso_code),
                 "currencyIsoCode": payment.currency_iso_code, "gatewayReferenceNumber": payment.gateway_ref_number},
    )


def refund_changed(refund: Refund, verb: str, *, order_summary_id: str | None = None) -> RecordEvent:
    """``om.refund.<verb>``: pending, processed, failed, unknown, reversed; one event per
    refund and verb (a refund enters each state at most once)."""
    return RecordEvent(
        record="refund", verb=verb, record_id=refund.id,
        related={"order-summary": _ids(order_summary_id),
                 "order-payment-summary": (refund.order_payment_summary_id,),
                 "payment": (refund.payment_id,), "credit-memo": _ids(refund.credit_memo_id)},
        payload={"refundId": refund.id, "orderSummaryId": order_summary_id,
                 "orderPaymentSummaryId": refund.order_payment_summary_id, "paymentId": refund.payment_id,
                 "creditMemoId": refund.credit_memo_id, "status": str(refund.status),
                 "amount": _money(refund.amount, refund.currency_iso_code),
                 "currencyIsoCode": refund.currency_iso_code, "gatewayResultCode": refund.gateway_result_code,
                 "gatewayReferenceNumber": refund.gateway_ref_number, "revision": str(refund.revision)},
    )


def reconciliation_difference(finding: ReconciliationFinding) -> RecordEvent:
    """``om.reconciliation.difference``: a reconcile-gateway run found a difference between the
    store and a gateway, once per finding (again only if it came back after it was resolved)."""
    store_role = ROLE_BY_PREFIX.get((finding.store_record_id or "")[:3], "record")
    related = {"payment-gateway": _ids(finding.payment_gateway_id), "order-summary": _ids(finding.order_summary_id),
               "payment": _ids(finding.payment_id)}
    if finding.store_record_id and store_role != "payment":
        related[store_role] = (finding.store_record_id,)
    if finding.recorded_refund_id:
        related["refund"] = (finding.recorded_refund_id,)

    def amount(value, currency):
        return None if value is None or currency is None else _money(value, currency)

    return RecordEvent(
        record="reconciliation", verb="difference", record_id=finding.id, related=related,
        payload={"findingId": finding.id, "difference": finding.difference, "recordKind": finding.record_kind,
                 "status": str(finding.status), "resolution": None if finding.resolution is None else str(finding.resolution),
                 "gatewayAccount": finding.gateway_account, "paymentGatewayId": finding.payment_gateway_id,
                 "gatewayReference": finding.gateway_reference, "gatewayStatus": finding.gateway_status,
                 "gatewayAmount": amount(finding.gateway_amount, finding.gateway_currency),
                 "gatewayCurrency": finding.gateway_currency, "storeObject": finding.store_object,
                 "storeRecordId": finding.store_record_id, "storeStatus": finding.store_status,
                 "storeAmount": amount(finding.store_amount, finding.store_currency),
                 "storeCurrency": finding.store_currency, "orderSummaryId": finding.order_summary_id,
                 "paymentId": finding.payment_id, "recordedRefundId": finding.recorded_refund_id,
                 "detail": finding.detail, "runId": finding.last_seen_run_id},
        labels={"om.difference": finding.difference},
        discriminator=str(finding.times_opened),
    )


def process_exception_created(exception: ProcessException) -> RecordEvent:
    attached_role = ROLE_BY_PREFIX.get(exception.attached_to_id[:3], "record")
    return RecordEvent(
        record="process-exception", verb="created", record_id=exception.id,
        related={"order-summary": _ids(exception.order_summary_id), attached_role: (exception.attached_to_id,)},
        payload={"processExceptionId": exception.id, "orderSummaryId": exception.order_summary_id,
                 "attachedToId": exception.attached_to_id, "category": exception.category,
                 "severity": exception.severity, "message": exception.message},
    )



def sobject_created(object_name: str, record, public: dict) -> RecordEvent:
    """``om.<record>.created`` for a record created directly through the sObject API
    (OrderSummary, Payment, ...). Credit memos and invoices made so carry ``om.source``
    Direct, so the shipped triggers (made from change orders, fulfilments) pass them by."""
    if isinstance(record, CreditMemo):
        return credit_memo_created(record, [])
    if isinstance(record, Invoice):
        return invoice_created(record, source="Direct")
    related = {role: (value,) for attribute, role in (
        ("order_summary_id", "order-summary"), ("order_payment_summary_id", "order-payment-summary"),
        ("payment_gateway_id", "payment-gateway")) if (value := getattr(record, attribute, None))}
    payload = {key[:1].lower() + key[1:]: None if value is None else str(value)
               for key, value in public.items() if not isinstance(value, (dict, list))}
    return RecordEvent(record=record_name(object_name), verb="created", record_id=record.id, related=related,
                       payload=payload, labels={"om.source": "Direct"})
