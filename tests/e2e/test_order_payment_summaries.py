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
