"""The payment-level refunds API (seed 003's shape) over https against the served
deployments: create, the PENDING -> SUCCEEDED round trip, safe retries, permissions,
refusals that change nothing, query and refundability."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal as D

import pytest
import requests
from prefect.client.orchestration import get_client

from tests.e2e.conftest import E2E_GATEWAY_BLOCK, count_requested_runs
from tests.ledger import assert_ledger_invariants, snapshot

pytestmark = pytest.mark.e2e
REFUNDS = "/payments/refunds/v1"


class Api:
    def __init__(self, engine, tls, token=None):
        self.base, self.verify = engine.facade_url + REFUNDS, str(tls[0])
        self.headers = {"Authorization": f"Bearer {token or engine.config.token}"}

    def post(self, path, body, key=None):
        headers = {**self.headers, **({"Idempotency-Key": key} if key else {})}
        return requests.post(self.base + path, json=body, headers=headers, verify=self.verify)

    def get(self, path, **params):
        return requests.get(self.base + path, params=params, headers=self.headers, verify=self.verify)


@pytest.fixture
def api(engine, tls):
    return Api(engine, tls)


def a_charge(sf, amount, method="Card"):
    gateway = sf.PaymentGateway.create({"PaymentGatewayName": "e2e", "MerchantCredentialName": E2E_GATEWAY_BLOCK})["id"]
    order = sf.OrderSummary.create({"OrderNumber": f"PR-{uuid.uuid4().hex[:6]}", "CurrencyIsoCode": "USD"})["id"]
    ops = sf.OrderPaymentSummary.create({"OrderSummaryId": order, "Method": "Card"})["id"]
    payment = sf.Payment.create({"OrderPaymentSummaryId": ops, "PaymentGatewayId": gateway, "Amount": amount,
                                 "PaymentMethodType": method})["id"]
    return order, payment


def wait_until_settled(api, refund_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        refund = api.get(f"/refunds/{refund_id}").json()["refund"]
        if refund["status"] != "PENDING":
            return refund
        time.sleep(0.2)
    raise AssertionError(f"refund {refund_id} still PENDING after {timeout}s")


def _prefect_events_of(refund_id, timeout=30):
    from prefect.events.filters import EventFilter, EventResourceFilter

    deadline, names = time.monotonic() + timeout, set()
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            page = client.read_events(EventFilter(resource=EventResourceFilter(id=[f"om.refund.{refund_id}"])), limit=50)
        names = {event.event for event in page.events}
        if {"om.refund.pending", "om.refund.processed"} <= names:
            break
        time.sleep(0.5)
    return names


def test_create_refund_pending_then_succeeded(sf, engine, api):
    _order, charge = a_charge(sf, 80.00)
    created = api.post("/refunds", {"refund": {"chargeId": charge, "amount": "30.00", "reason": "late delivery"},
                                    "previouslyRefundedAmount": "0"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["refund"]["status"] == "PENDING" and body["refund"]["amount"] == "30.00"
    assert body["backgroundOperationId"] and body["refund"]["backgroundOperationId"] == body["backgroundOperationId"]
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(body["backgroundOperationId"]))
        assert client.read_deployment(run.deployment_id).name == "send-payment-refund"
    refund = wait_until_settled(api, body["refund"]["id"])
    assert (refund["status"], refund["revision"]) == ("SUCCEEDED", 2)
    assert _prefect_events_of(refund["id"]) >= {"om.refund.pending", "om.refund.processed"}  # for automations
    assert D(str(sf.Payment.get(charge)["RefundedAmount"])) == D("30.00")
    refundability = api.get("/refundability", chargeId=charge).json()["refundability"]
    assert refundability["refundable"] is True and refundability["maxRefundAmount"] == "50.00"
    assert refundability["previouslyRefundedAmount"] == "30.00"
    assert_ledger_invariants(engine.store_url)


def test_a_retry_after_a_network_error_refunds_once(sf, engine, api):
    _order, charge = a_charge(sf, 40.00)
    key = f"refund-{uuid.uuid4()}"
    body = {"refund": {"chargeId": charge, "amount": "15.00"}, "previouslyRefundedAmount": "0"}
    first, again = api.post("/refunds", body, key), api.post("/refunds", body, key)
    assert first.status_code == again.status_code == 201
    assert again.json()["refund"]["id"] == first.json()["refund"]["id"]
    assert again.json()["backgroundOperationId"] == first.json()["backgroundOperationId"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    wait_until_settled(api, first.json()["refund"]["id"])
    changed = api.post("/refunds", {**body, "refund": {**body["refund"], "amount": "16.00"}}, key)
    assert changed.status_code == 409 and changed.json()[0]["errorCode"] == "IDEMPOTENCY_KEY_REUSED"
    # Without the key, the same request is a new refund, which previouslyRefundedAmount catches.
    stale = api.post("/refunds", body)
    assert stale.status_code == 409 and stale.json()[0]["errorCode"] == "PREVIOUSLY_REFUNDED_AMOUNT_MISMATCH"
    assert D(str(sf.Payment.get(charge)["RefundedAmount"])) == D("15.00")
    assert_ledger_invariants(engine.store_url)


def test_refusals_change_nothing_and_start_nothing(sf, engine, api, tls):
    _order, charge = a_charge(sf, 20.00)
    _order2, debit = a_charge(sf, 20.00, method="DirectDebit")
    before = snapshot(engine.store_url)
    runs_before = count_requested_runs()
    for body, status, code in [
        ({"refund": {"chargeId": charge, "amount": "20.01"}}, 400, "INVALID_REFUND_AMOUNT"),
        ({"refund": {"chargeId": charge, "amount": "5"}, "previouslyRefundedAmount": "1.00"}, 409,
         "PREVIOUSLY_REFUNDED_AMOUNT_MISMATCH"),
        ({"refund": {"chargeId": charge, "amount": "5", "currencyCode": "EUR"}}, 400, "CURRENCY_MISMATCH"),
        ({"refund": {"chargeId": "0a3AAAAAAAAAAAAAAA"}}, 404, "INVALID_ID_FIELD"),
        ({"refund": {"chargeId": debit}}, 400, "DIRECT_DEBIT_OVERRIDE_REQUIRED"),
        ({"refund": {"chargeId": charge, "amount": "-1"}}, 400, "INVALID_INPUT"),
        ({"refund": {"chargeId": charge}, "unknown": 1}, 400, "INVALID_INPUT"),
    ]:
        answer = api.post("/refunds", body)
        assert (answer.status_code, answer.json()[0]["errorCode"]) == (status, code), (body, answer.text)
    read_only = Api(engine, tls, token="read-only-token").post("/refunds", {"refund": {"chargeId": charge}})
    assert read_only.status_code == 403 and read_only.json()[0]["errorCode"] == "INSUFFICIENT_ACCESS"
    assert Api(engine, tls, token="read-only-token").get("/refundability", chargeId=charge).json()[
        "refundability"]["nonRefundableReason"] == "ACCESS_DENIED"
    assert snapshot(engine.store_url) == before
    assert count_requested_runs() == runs_before
    overridden = api.post("/refunds", {"refund": {"chargeId": debit, "amount": "5.00"},
                                       "directDebitOverride": {"reason": "mandate cancelled; bank will not refund"}})
    assert overridden.status_code == 201
    refund = wait_until_settled(api, overridden.json()["refund"]["id"])
    assert refund["directDebitOverrideReason"] == "mandate cancelled; bank will not refund"
    assert_ledger_invariants(engine.store_url)


def test_query_refunds_of_a_charge_in_pages(sf, engine, api):
    order, charge = a_charge(sf, 100.00)
    ids = [api.post("/refunds", {"refund": {"chargeId": charge, "amount": "1.00"}}).json()["refund"]["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        paging = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.post("/refunds/query", {"query": {"filter": {"chargeId": charge}, "cursorPaging": paging}}).json()
        seen += [r["id"] for r in page["refunds"]]
        if not page["pagingMetadata"]["hasNext"]:
            break
        cursor = page["pagingMetadata"]["cursors"]["next"]
    assert seen == ids  # oldest first, each once
    by_order = api.post("/refunds/query", {"query": {"filter": {"orderSummaryId": order, "status": {"$in": ["PENDING", "SUCCEEDED"]}},
                                                     "sort": [{"fieldName": "createdDate", "order": "DESC"}]}}).json()
    assert [r["id"] for r in by_order["refunds"]] == ids[::-1]
    for bad in ({"filter": {"amount": "1"}}, {"cursorPaging": {"limit": 101}}, {"cursorPaging": {"cursor": "nonsense"}},
                {"sort": [{"fieldName": "amount"}]}):
        answer = api.post("/refunds/query", {"query": bad})
        assert answer.status_code == 400, (bad, answer.text)
    for refund_id in ids:
        wait_until_settled(api, refund_id)
    assert_ledger_invariants(engine.store_url)
