"""Order payment summaries as Salesforce makes them (issue 14, SF-FIDELITY rows 48 and 23),
through simple-salesforce: ``Method`` is free text ("Visa"), and the Connect resource
``commerce/order-management/order-payment-summaries`` makes a summary from payments or an
authorization that belong to none yet."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest

from tests.e2e.conftest import E2E_GATEWAY_BLOCK
from tests.e2e.test_ensure_refunds_async import ACTION, wait_for_operation
from tests.ledger import assert_ledger_invariants

pytestmark = pytest.mark.e2e


def money(record, field) -> D:
    return D(str(record[field]))


def a_gateway(sf) -> str:
    return sf.PaymentGateway.create({"PaymentGatewayName": "e2e", "MerchantCredentialName": E2E_GATEWAY_BLOCK})["id"]


def an_order(sf, currency="USD") -> str:
    return sf.OrderSummary.create({"OrderNumber": f"OPS-{uuid.uuid4().hex[:6]}", "CurrencyIsoCode": currency})["id"]


def test_a_summary_named_visa_is_refunded_through(sf, engine):
    order, gateway = an_order(sf), a_gateway(sf)
    visa = sf.OrderPaymentSummary.create({"OrderSummaryId": order, "Method": "Visa"})["id"]
    sf.Payment.create({"OrderPaymentSummaryId": visa, "PaymentGatewayId": gateway, "Amount": 45.00})
    memo = sf.CreditMemo.create({"ReferenceEntityId": order, "TotalAmount": 20.00})["id"]
    assert sf.OrderPaymentSummary.get(visa)["Method"] == "Visa"

    answer = sf.restful(ACTION.format(order), method="POST", json={"creditMemoId": memo})
    assert wait_for_operation(sf, answer["backgroundOperationId"])["Status"] == "Complete"

    assert money(sf.OrderPaymentSummary.get(visa), "RefundedAmount") == D("20.00")
    assert money(sf.CreditMemo.get(memo), "Balance") == 0
    assert_ledger_invariants(engine.store_url)


RESOURCE = "commerce/order-management/order-payment-summaries"


def test_payments_recorded_first_get_their_summary_and_are_refunded(sf, engine):
    """Salesforce's integration order: payments first (no OrderPaymentSummaryId, with
    CurrencyIsoCode), then the summary from them; Ensure Refunds then refunds through it. A
    retry under the same Idempotency-Key replays the answer and makes no second summary."""
    order, gateway = an_order(sf), a_gateway(sf)
    payments = [sf.Payment.create({"PaymentGatewayId": gateway, "CurrencyIsoCode": "USD", "Amount": amount})["id"]
                for amount in (60.00, 15.50)]
    assert sf.Payment.get(payments[0])["OrderPaymentSummaryId"] is None
    key = {"Idempotency-Key": f"ops-{uuid.uuid4()}"}
    body = {"orderSummaryId": order, "paymentIds": payments}

    answer = sf.restful(RESOURCE, method="POST", json=body, headers=key)
    again = sf.restful(RESOURCE, method="POST", json=body, headers=key)

    summary = answer["orderPaymentSummaryId"]
    assert again == answer and set(answer) == {"orderPaymentSummaryId"}
    read = sf.OrderPaymentSummary.get(summary)
    assert (read["OrderSummaryId"], read["CurrencyIsoCode"], money(read, "CapturedAmount")) == (order, "USD", D("75.50"))
    assert [sf.Payment.get(p)["OrderPaymentSummaryId"] for p in payments] == [summary, summary]
    memo = sf.CreditMemo.create({"ReferenceEntityId": order, "TotalAmount": 70.00})["id"]
    operation = sf.restful(ACTION.format(order), method="POST", json={"creditMemoId": memo})
    assert wait_for_operation(sf, operation["backgroundOperationId"])["Status"] == "Complete"
    assert money(sf.OrderPaymentSummary.get(summary), "RefundedAmount") == D("70.00")
    assert_ledger_invariants(engine.store_url)


def test_refused_requests_write_nothing(sf, engine):
    from simple_salesforce.exceptions import SalesforceError

    from tests.e2e.test_salesforce_shapes import at_version
    from tests.ledger import snapshot

    order, gateway = an_order(sf), a_gateway(sf)
    card = sf.Payment.create({"PaymentGatewayId": gateway, "CurrencyIsoCode": "USD", "Amount": 5})["id"]
    debit = sf.Payment.create({"PaymentGatewayId": gateway, "CurrencyIsoCode": "USD", "Amount": 5,
                               "PaymentMethodType": "DirectDebit"})["id"]
    euro = sf.Payment.create({"PaymentGatewayId": gateway, "CurrencyIsoCode": "EUR", "Amount": 5})["id"]
    authorization = sf.PaymentAuthorization.create({"PaymentGatewayId": gateway, "CurrencyIsoCode": "USD",
                                                    "Amount": 5})["id"]
    before = snapshot(engine.store_url)
    for client, body, code in [
        (sf, {"orderSummaryId": order, "paymentIds": [card, debit]}, "INVALID_INPUT"),
        (sf, {"orderSummaryId": order, "paymentIds": [card, euro]}, "CURRENCY_MISMATCH"),
        (sf, {"orderSummaryId": order, "paymentIds": [card, card]}, "INVALID_INPUT"),
        (sf, {"orderSummaryId": order, "paymentIds": [card, "0a3AAAAAAAAAAAAAAA"]}, "INVALID_ID_FIELD"),
        (sf, {"orderSummaryId": order, "paymentIds": [card], "paymentAuthorizationId": authorization}, "INVALID_INPUT"),
        (at_version(sf, "65.0"), {"orderSummaryId": order, "paymentIds": [card], "name": "Visa"}, "INVALID_INPUT"),
    ]:
        with pytest.raises(SalesforceError) as refused:
            client.restful(RESOURCE, method="POST", json=body)
        assert (refused.value.status, refused.value.content[0]["errorCode"]) == (400, code), body
    assert snapshot(engine.store_url) == before
    named = at_version(sf, "66.0").restful(RESOURCE, method="POST", json={"orderSummaryId": order, "paymentAuthorizationId": authorization,
                                                      "name": "Visa 4242"})["orderPaymentSummaryId"]
    read = sf.OrderPaymentSummary.get(named)
    assert (read["Method"], money(read, "AuthorizationAmount")) == ("Visa 4242", D("5.00"))
    assert_ledger_invariants(engine.store_url)
