"""OrderPaymentSummary.Method is Salesforce's free text (Object Reference v67: a string,
255 characters): "Visa" is accepted, and the engine's refund rules read each Payment's own
PaymentMethodType, never the summary's Method."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
from prefect import flow
from pydantic import ValidationError

from actions.ensure_refunds import EnsureRefundsInput, ensure_refunds
from actions.payment_refunds import payment_refundability
from blocks import SandboxGateway
from db.engine import session_scope
from db.models import OrderPaymentSummary, RefundStatus
from db.sobjects import create_sobject, read_sobject
from tests.factories import make_order
from tests.ledger import assert_ledger_invariants, snapshot

GATEWAY = "test-summary-method-gateway"


@pytest.fixture(scope="module", autouse=True)
def sandbox(prefect_api):
    SandboxGateway().save(GATEWAY, overwrite=True)


@flow(name="test-summary-method-ensure-refunds")
def run_refunds(order_summary_id: str, request: EnsureRefundsInput, operation_id: str):
    return ensure_refunds(order_summary_id, request, operation_id)


def _summary_with_payment(store, order, method, amount, payment_method_type="Card"):
    with session_scope(store) as s:
        ops = create_sobject(session=s, object_name="OrderPaymentSummary",
                             fields={"OrderSummaryId": order.order_summary_id, "Method": method})
        payment = create_sobject(session=s, object_name="Payment", fields={
            "OrderPaymentSummaryId": ops.id, "PaymentGatewayId": order.gateway_id, "Amount": amount,
            "PaymentMethodType": payment_method_type})
        return ops.id, payment.id


def test_a_summary_of_visa_payments_is_refunded_through(store):
    with session_scope(store) as s:
        order = make_order(s, payments=["10.00"], credit_memo="35.00", gateway_block=GATEWAY)
    visa, _payment = _summary_with_payment(store, order, "Visa", 50)
    with session_scope(store) as s:
        assert read_sobject(session=s, object_name="OrderPaymentSummary", record_id=visa)["Method"] == "Visa"

    out = run_refunds(order.order_summary_id, EnsureRefundsInput(credit_memo_id=order.credit_memo_id), str(uuid.uuid4()))

    assert [(r.order_payment_summary_id, r.amount, r.status) for r in out.refunds] == [
        (visa, D("35.00"), RefundStatus.PROCESSED)]
    with session_scope(store) as s:
        assert s.get(OrderPaymentSummary, visa).refunded_amount == D("35.00")
    assert_ledger_invariants(store)


def test_the_direct_debit_rule_reads_the_payment_not_the_summarys_method(store):
    """A summary whose Method reads like a card holds a direct debit: the payment's own
    PaymentMethodType decides (the override is asked for); one whose Method says
    "Direct Debit" holding a card payment is refunded as a card."""
    with session_scope(store) as s:
        order = make_order(s, payments=[], gateway_block=GATEWAY)
    _ops, debit = _summary_with_payment(store, order, "Visa", 20, payment_method_type="DirectDebit")
    _ops, card = _summary_with_payment(store, order, "Direct Debit (SEPA)", 20)
    with session_scope(store) as s:
        assert payment_refundability(session=s, charge_id=debit).requires_direct_debit_override is True
        assert payment_refundability(session=s, charge_id=card).requires_direct_debit_override is False


@pytest.mark.parametrize("method", ["", "x" * 256])
def test_a_method_empty_or_longer_than_255_is_refused(store, method):
    with session_scope(store) as s:
        order = make_order(s, payments=[], gateway_block=GATEWAY)
    before = snapshot(store)
    with pytest.raises(ValidationError), session_scope(store) as s:
        create_sobject(session=s, object_name="OrderPaymentSummary",
                       fields={"OrderSummaryId": order.order_summary_id, "Method": method})
    assert snapshot(store) == before
    with session_scope(store) as s:
        ops = create_sobject(session=s, object_name="OrderPaymentSummary",
                             fields={"OrderSummaryId": order.order_summary_id, "Method": "y" * 255})
        assert read_sobject(session=s, object_name="OrderPaymentSummary", record_id=ops.id)["Method"] == "y" * 255
