"""External payments over the REST facade with simple-salesforce (issue 14, SF-FIDELITY row 45):
Payment and PaymentAuthorization take Salesforce's ProcessingMode (Object Reference v67,
restricted picklist External/Salesforce) and an External one needs no PaymentGatewayId.
Refunding one, through Ensure Refunds or the payment-level refunds API, calls no gateway:
the refund is Processed with its gateway log saying External, the sandbox's books unchanged."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
from simple_salesforce.exceptions import SalesforceError
from sqlmodel import select

from tests.e2e.conftest import E2E_GATEWAY_BLOCK
from tests.e2e.test_ensure_refunds_async import ACTION, wait_for_operation
from tests.e2e.test_payment_refunds_api import api, wait_until_settled  # noqa: F401 - the api fixture
from tests.ledger import assert_ledger_invariants, snapshot

pytestmark = pytest.mark.e2e


def _books(store_url):
    from db.engine import session_scope
    from gateways.sandbox_ledger import SandboxGatewayCapture, SandboxGatewayRefund

    with session_scope(store_url) as s:
        return (sorted(r.idempotency_key for r in s.exec(select(SandboxGatewayRefund))),
                sorted(r.idempotency_key for r in s.exec(select(SandboxGatewayCapture))))


def an_order(sf, *, external, card=None, credit_memo=None):
    """An order whose first payment summary holds one External payment of ``external`` (no
    gateway), and a second summary one card payment of ``card`` through the sandbox."""
    order = sf.OrderSummary.create({"OrderNumber": f"EXT-{uuid.uuid4().hex[:6]}", "CurrencyIsoCode": "USD"})["id"]
    outside = sf.OrderPaymentSummary.create({"OrderSummaryId": order})["id"]
    payment = sf.Payment.create({"OrderPaymentSummaryId": outside, "ProcessingMode": "External", "Amount": external,
                                 "Type": "Sale"})["id"]
    summaries = [outside]
    if card is not None:
        gateway = sf.PaymentGateway.create({"PaymentGatewayName": "e2e", "MerchantCredentialName": E2E_GATEWAY_BLOCK})["id"]
        through = sf.OrderPaymentSummary.create({"OrderSummaryId": order})["id"]
        sf.Payment.create({"OrderPaymentSummaryId": through, "PaymentGatewayId": gateway, "Amount": card})
        summaries.append(through)
    memo = sf.CreditMemo.create({"ReferenceEntityId": order, "TotalAmount": credit_memo})["id"] if credit_memo else None
    return order, summaries, payment, memo


def test_ensure_refunds_to_an_external_payment_calls_no_gateway(sf, engine):
    order, (outside, through), payment, memo = an_order(sf, external=70.00, card=30.00, credit_memo=25.00)
    read = sf.Payment.get(payment)
    assert (read["ProcessingMode"], read["PaymentGatewayId"]) == ("External", None)
    books = _books(engine.store_url)

    answer = sf.restful(ACTION.format(order), method="POST", json={"creditMemoId": memo})
    assert wait_for_operation(sf, answer["backgroundOperationId"])["Status"] == "Complete"

    assert D(str(sf.OrderPaymentSummary.get(outside)["RefundedAmount"])) == D("25.00")  # seed 000: the largest
    assert D(str(sf.OrderPaymentSummary.get(through)["RefundedAmount"])) == 0
    refunds = sf.query(f"SELECT Id, Status, Amount FROM Refund WHERE PaymentId = '{payment}'")["records"]
    assert [(r["Status"], D(str(r["Amount"]))) for r in refunds] == [("Processed", D("25.00"))]
    [log] = sf.query(f"SELECT Id, PaymentGatewayId, GatewayResultCode, InteractionStatus FROM PaymentGatewayLog "
                     f"WHERE ReferencedEntityId = '{refunds[0]['Id']}'")["records"]
    assert (log["PaymentGatewayId"], log["GatewayResultCode"], log["InteractionStatus"]) == (None, "External", "Success")
    assert _books(engine.store_url) == books  # no gateway was called
    assert_ledger_invariants(engine.store_url)


@pytest.mark.parametrize("object_name", ["Payment", "PaymentAuthorization"])
def test_a_salesforce_mode_record_without_a_gateway_is_refused_and_writes_nothing(sf, engine, object_name):
    order = sf.OrderSummary.create({"OrderNumber": f"EXT-{uuid.uuid4().hex[:6]}", "CurrencyIsoCode": "USD"})["id"]
    ops = sf.OrderPaymentSummary.create({"OrderSummaryId": order})["id"]
    before = snapshot(engine.store_url)
    for mode in ({}, {"ProcessingMode": "Salesforce"}):
        with pytest.raises(SalesforceError) as refused:
            getattr(sf, object_name).create({"OrderPaymentSummaryId": ops, "Amount": 10, **mode})
        assert refused.value.status == 400
        [error] = refused.value.content
        assert (error["errorCode"], error["fields"]) == ("REQUIRED_FIELD_MISSING", ["PaymentGatewayId"])
    with pytest.raises(SalesforceError) as refused:
        getattr(sf, object_name).create({"OrderPaymentSummaryId": ops, "Amount": 10, "ProcessingMode": "Outside"})
    assert refused.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert snapshot(engine.store_url) == before


def test_the_payment_refund_api_on_an_external_payment(sf, engine, api):  # noqa: F811 - the api fixture
    _order, _summaries, payment, _memo = an_order(sf, external=40.00)
    books = _books(engine.store_url)
    created = api.post("/refunds", {"refund": {"chargeId": payment, "amount": "15.00", "reason": "paid back in store"},
                                    "previouslyRefundedAmount": "0"})
    assert created.status_code == 201, created.text
    refund = wait_until_settled(api, created.json()["refund"]["id"])
    assert (refund["status"], refund["gatewayResultCode"]) == ("SUCCEEDED", "External")
    assert D(str(sf.Payment.get(payment)["RefundedAmount"])) == D("15.00")
    assert _books(engine.store_url) == books
    assert_ledger_invariants(engine.store_url)
