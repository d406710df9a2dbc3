"""The payment-refund deployments' flows, run in-process against the real Prefect server:
refund-payment (what an operator starts from the UI) and record-refund-reversal."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from actions.payment_refunds import RefundPaymentInput
from blocks import SandboxGateway
from db.engine import session_scope
from db.models import Payment, PaymentCreate, Refund
from db.sobjects import create_payment
from gateways.sandbox import SandboxGatewayAdapter
from tests.factories import make_order
from tests.ledger import assert_ledger_invariants

GATEWAY = "test-refund-flows-gateway"


@pytest.fixture(scope="module", autouse=True)
def gateway(prefect_api):
    SandboxGateway().save(GATEWAY, overwrite=True)


def test_refund_payment_then_the_gateway_reverses_it(store):
    from flows.refund_payment import record_refund_reversal, refund_payment

    with session_scope(store) as s:
        order = make_order(s, payments=[[]], gateway_block=GATEWAY)
        charge = create_payment(session=s, obj_in=PaymentCreate(
            order_payment_summary_id=order.summaries[0], payment_gateway_id=order.gateway_id, amount=D("25.00"))).id
    refunded = refund_payment(RefundPaymentInput(charge_id=charge, reason="duplicate charge"))
    assert (refunded.amount, refunded.status, refunded.reason) == (D("25.00"), "SUCCEEDED", "duplicate charge")
    assert refunded.background_operation_id  # the flow run that carried it
    with session_scope(store) as s:
        key = s.get(Refund, refunded.id).idempotency_key
    SandboxGatewayAdapter().reverse_refund(key)
    reversed_ = record_refund_reversal(refunded.id, "the issuer returned the refund")
    assert (reversed_.status, reversed_.revision) == ("REVERSED", 3)
    with session_scope(store) as s:
        assert s.get(Payment, charge).refunded_amount == 0
    assert_ledger_invariants(store)
