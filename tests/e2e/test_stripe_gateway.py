"""End to end through a Stripe PaymentGateway: a Salesforce client records Stripe charges,
calls ensure-refunds-async and the payment-level refunds API over https, and Stripe (the
stripe SDK against localstripe on loopback) shows each refund once."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
import stripe
from simple_salesforce.exceptions import SalesforceError

from blocks import StripeGateway
from tests.e2e.test_ensure_refunds_async import ACTION, wait_for_operation
from tests.e2e.test_payment_refunds_api import Api, wait_until_settled
from tests.gateways.test_stripe_adapter import API_KEY, charge
from tests.ledger import assert_ledger_invariants

pytestmark = pytest.mark.e2e
BLOCK = "e2e-stripe-account"


@pytest.fixture(scope="module")
def stripe_client(engine, localstripe) -> stripe.StripeClient:
    StripeGateway(api_key=API_KEY, api_base=localstripe, timeout_seconds=10).save(BLOCK, overwrite=True)
    return stripe.StripeClient(API_KEY, base_addresses={"api": localstripe}, max_network_retries=0)


def stripe_order(sf, client, amounts):
    gateway = sf.PaymentGateway.create({"PaymentGatewayName": "stripe", "GatewayProvider": "Stripe",
                                        "MerchantCredentialName": BLOCK})["id"]
    order = sf.OrderSummary.create({"OrderNumber": f"ST-{uuid.uuid4().hex[:6]}", "CurrencyIsoCode": "USD"})["id"]
    charges, payments = [], []
    for amount in amounts:
        reference = charge(client, int(D(amount) * 100))
        ops = sf.OrderPaymentSummary.create({"OrderSummaryId": order, "Method": "Card"})["id"]
        payments.append(sf.Payment.create({"OrderPaymentSummaryId": ops, "PaymentGatewayId": gateway, "Amount": amount,
                                           "GatewayRefNumber": reference})["id"])
        charges.append(reference)
    return gateway, order, charges, payments


def refunded_at_stripe(client, reference) -> list[int]:
    return [r.amount for r in client.v1.refunds.list(params={"charge": reference}).auto_paging_iter()]


def test_ensure_refunds_async_refunds_the_stripe_charge(sf, engine, stripe_client):
    _gateway, order, charges, _payments = stripe_order(sf, stripe_client, ["60.00", "40.00"])
    memo = sf.CreditMemo.create({"OrderSummaryId": order, "TotalAmount": 45.50})["id"]

    operation_id = sf.restful(ACTION.format(order), method="POST", json={"creditMemoId": memo})["backgroundOperationId"]

    assert wait_for_operation(sf, operation_id)["Status"] == "Complete"
    assert refunded_at_stripe(stripe_client, charges[0]) == [4550]
    assert refunded_at_stripe(stripe_client, charges[1]) == []
    assert D(str(sf.CreditMemo.get(memo)["Balance"])) == D("0")
    assert_ledger_invariants(engine.store_url)


def test_payment_refund_api_through_stripe(sf, engine, tls, stripe_client):
    _gateway, _order, charges, payments = stripe_order(sf, stripe_client, ["25.00"])
    api = Api(engine, tls)
    key = f"retry-{uuid.uuid4()}"

    first = api.post("/refunds", {"refund": {"chargeId": payments[0], "amount": "10.00"}}, key=key)
    retried = api.post("/refunds", {"refund": {"chargeId": payments[0], "amount": "10.00"}}, key=key)

    assert first.status_code == 201 and retried.json()["refund"]["id"] == first.json()["refund"]["id"]
    assert wait_until_settled(api, first.json()["refund"]["id"])["status"] == "SUCCEEDED"
    assert refunded_at_stripe(stripe_client, charges[0]) == [1000]
    assert_ledger_invariants(engine.store_url)


def test_a_stripe_payment_needs_its_charge_id(sf, engine, stripe_client):
    gateway, order, _charges, _payments = stripe_order(sf, stripe_client, [])
    ops = sf.OrderPaymentSummary.create({"OrderSummaryId": order, "Method": "Card"})["id"]
    with pytest.raises(SalesforceError) as refused:
        sf.Payment.create({"OrderPaymentSummaryId": ops, "PaymentGatewayId": gateway, "Amount": 5})
    assert refused.value.status == 400 and "GatewayRefNumber" in refused.value.content[0]["message"]


def test_no_secret_reaches_logs_run_parameters_artifacts_or_events(sf, engine, localstripe):
    """A refund through Stripe with a key of its own, then every place an operator or an
    automation can read: the key, the facade's token and Prefect's auth string never show."""
    from tests.secrets_scan import assert_nowhere, readable_places

    key = f"sk_test_{uuid.uuid4().hex}"
    block = f"e2e-secret-{uuid.uuid4().hex[:6]}"
    StripeGateway(api_key=key, api_base=localstripe, timeout_seconds=10).save(block, overwrite=True)
    client = stripe.StripeClient(key, base_addresses={"api": localstripe}, max_network_retries=0)
    gateway = sf.PaymentGateway.create({"PaymentGatewayName": "stripe", "GatewayProvider": "Stripe",
                                        "MerchantCredentialName": block})["id"]
    order = sf.OrderSummary.create({"OrderNumber": f"SEC-{uuid.uuid4().hex[:6]}", "CurrencyIsoCode": "USD"})["id"]
    ops = sf.OrderPaymentSummary.create({"OrderSummaryId": order, "Method": "Card"})["id"]
    sf.Payment.create({"OrderPaymentSummaryId": ops, "PaymentGatewayId": gateway, "Amount": 30,
                       "GatewayRefNumber": charge(client, 3000)})
    memo = sf.CreditMemo.create({"OrderSummaryId": order, "TotalAmount": 12.5})["id"]
    operation_id = sf.restful(ACTION.format(order), method="POST", json={"creditMemoId": memo})["backgroundOperationId"]
    assert wait_for_operation(sf, operation_id)["Status"] == "Complete"

    places = readable_places(operation_id) | {
        f"log file {p.name}": p.read_text(errors="replace") for p in engine.logs.glob("*.log")}
    assert_nowhere([key, engine.config.token, *([engine.prefect_auth_string] if engine.prefect_auth_string else [])],
                   places)
