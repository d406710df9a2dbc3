"""End to end: a Salesforce client sets up an order, calls ensure-refunds-async over
https, gets a flow-run id back, and reads the refunds that the served deployment made."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal as D

import pytest
import requests
from prefect.client.orchestration import get_client
from simple_salesforce.exceptions import SalesforceError

from tests.e2e.conftest import E2E_GATEWAY_BLOCK, count_requested_runs
from tests.ledger import assert_ledger_invariants, snapshot

pytestmark = pytest.mark.e2e
ACTION = "commerce/order-management/order-summaries/{}/async-actions/ensure-refunds-async"


def set_up_order(sf, *, payments, credit_memo=None, invoices=()):
    gateway = sf.PaymentGateway.create({"PaymentGatewayName": "e2e sandbox", "MerchantCredentialName": E2E_GATEWAY_BLOCK})["id"]
    order = sf.OrderSummary.create({"OrderNumber": f"E2E-{uuid.uuid4().hex[:6]}", "CurrencyIsoCode": "USD"})["id"]
    summaries = []
    for amount in payments:
        ops = sf.OrderPaymentSummary.create({"OrderSummaryId": order, "Method": "Card"})["id"]
        sf.Payment.create({"OrderPaymentSummaryId": ops, "PaymentGatewayId": gateway, "Amount": amount})
        summaries.append(ops)
    memo = sf.CreditMemo.create({"ReferenceEntityId": order, "TotalAmount": credit_memo})["id"] if credit_memo else None
    invoice_ids = [sf.Invoice.create({"ReferenceEntityId": order, "TotalAmount": a})["id"] for a in invoices]
    return order, summaries, memo, invoice_ids


def wait_for_operation(sf, operation_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        operation = sf.restful(f"sobjects/BackgroundOperation/{operation_id}")
        if operation["Status"] in ("Complete", "Error", "Canceled"):
            return operation
        time.sleep(0.2)
    raise AssertionError(f"operation {operation_id} did not finish in {timeout}s: {operation}")


def test_credit_memo_with_fee_refunded_through_the_facade(sf, engine):
    order, summaries, memo, invoices = set_up_order(sf, payments=[60.00, 40.00], credit_memo=30.00, invoices=[5.00])

    started = time.monotonic()
    answer = sf.restful(ACTION.format(order), method="POST", json={"creditMemoId": memo, "invoicesToPay": invoices})
    operation_id = answer["backgroundOperationId"]
    accepted = time.monotonic() - started
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(uuid.UUID(operation_id))
        deployment = client.read_deployment(flow_run.deployment_id)
    assert deployment.name == "ensure-refunds-async"
    assert flow_run.parameters["order_summary_id"] == order

    operation = wait_for_operation(sf, operation_id)
    completed = time.monotonic() - started
    print(f"\nPOST -> backgroundOperationId {accepted * 1000:.0f} ms; POST -> Complete {completed:.2f} s")
    assert operation["Status"] == "Complete", operation
    assert operation["Error"] is None and operation["StartedAt"] and operation["FinishedAt"]
    assert operation["SubmittedAt"] <= operation["StartedAt"] <= operation["FinishedAt"]
    assert operation["attributes"] == {"type": "BackgroundOperation",
                                       "url": f"/services/data/v60.0/sobjects/BackgroundOperation/{operation_id}"}

    # 5.00 paid the fee; 25.00 refunded to the largest summary (60.00).
    first, second = (sf.OrderPaymentSummary.get(s) for s in summaries)
    assert D(str(first["RefundedAmount"])) == D("25.00") and D(str(first["AvailableToRefundAmount"])) == D("35.00")
    assert D(str(second["RefundedAmount"])) == D("0")
    assert D(str(sf.CreditMemo.get(memo)["Balance"])) == D("0")
    assert D(str(sf.Invoice.get(invoices[0])["Balance"])) == D("0")
    assert_ledger_invariants(engine.store_url)


def test_decline_completes_the_operation_and_files_a_process_exception(sf, engine):
    order, summaries, memo, _ = set_up_order(sf, payments=[50.00], credit_memo=13.13)
    operation_id = sf.restful(ACTION.format(order), method="POST", json={"creditMemoId": memo})["backgroundOperationId"]
    operation = wait_for_operation(sf, operation_id)
    assert operation["Status"] == "Complete"  # gateway answers do not fail the operation (seed 000)
    assert D(str(sf.OrderPaymentSummary.get(summaries[0])["RefundedAmount"])) == D("0")
    assert D(str(sf.CreditMemo.get(memo)["Balance"])) == D("13.13")
    from sqlmodel import select

    from db.engine import session_scope
    from db.models import ProcessException, Refund

    with session_scope(engine.store_url) as s:
        refund = s.exec(select(Refund).where(Refund.background_operation_id == operation_id)).one()
        exception = s.exec(select(ProcessException).where(ProcessException.attached_to_id == refund.id)).one()
    assert sf.Refund.get(refund.id)["Status"] == "Failed"
    assert sf.ProcessException.get(exception.id)["Message"].startswith("Refund of 13.13 USD failed")
    assert_ledger_invariants(engine.store_url)


def test_timeout_completes_with_the_refund_unknown(sf, engine):
    order, summaries, memo, _ = set_up_order(sf, payments=[100.00], credit_memo=66.60)
    operation_id = sf.restful(ACTION.format(order), method="POST", json={"creditMemoId": memo})["backgroundOperationId"]
    assert wait_for_operation(sf, operation_id)["Status"] == "Complete"
    ops = sf.OrderPaymentSummary.get(summaries[0])
    assert D(str(ops["PendingRefundAmount"])) == D("66.60") and D(str(ops["AvailableToRefundAmount"])) == D("33.40")
    assert_ledger_invariants(engine.store_url)


@pytest.mark.parametrize(
    "body, code",
    [
        ({}, "INVALID_INPUT"),
        ({"excessFundsAmount": -1}, "INVALID_INPUT"),
        ({"excessFundsAmount": "ten"}, "INVALID_INPUT"),
        ({"excessFundsAmount": 10.001}, "INVALID_INPUT"),
        ({"excessFundsAmount": 100.01}, "INSUFFICIENT_AVAILABLE_TO_REFUND"),
        ({"creditMemoId": "50gAAAAAAAAAAAAAAA"}, "INVALID_ID_FIELD"),
        ({"creditMemoId": "not an id!"}, "INVALID_INPUT"),
        ({"excessFundsAmount": 5, "sequences": [{"amount": 5, "orderPaymentSummaryId": "0aPAAAAAAAAAAAAAAA"}]}, "INVALID_INPUT"),
        ({"excessFundsAmount": 5, "unknownField": 1}, "INVALID_INPUT"),
    ],
)
def test_invalid_requests_are_refused_before_any_run_starts(sf, engine, body, code):
    order, _summaries, _memo, _ = set_up_order(sf, payments=[60.00, 40.00])
    before = snapshot(engine.store_url)
    runs_before = count_requested_runs()
    with pytest.raises(SalesforceError) as refused:
        sf.restful(ACTION.format(order), method="POST", json=body)
    error = refused.value.content[0]
    assert refused.value.status in (400, 404)
    assert error["errorCode"] == code and error["message"]
    assert error["output"] == {"backgroundOperationId": None}
    assert count_requested_runs() == runs_before
    assert snapshot(engine.store_url) == before


def test_racing_operations_one_ends_in_error_and_nothing_is_half_written(sf, engine):
    """Both pass the facade's check (nothing is reserved yet); under the lock only one fits."""
    order, summaries, _memo, _ = set_up_order(sf, payments=[60.00, 40.00])
    ids = [sf.restful(ACTION.format(order), method="POST", json={"excessFundsAmount": 60})["backgroundOperationId"]
           for _ in range(2)]
    operations = [wait_for_operation(sf, i) for i in ids]
    assert sorted(o["Status"] for o in operations) == ["Complete", "Error"]
    failed = next(o for o in operations if o["Status"] == "Error")
    assert "AvailableToRefundAmount" in failed["Error"]
    total = sum(D(str(sf.OrderPaymentSummary.get(s)["RefundedAmount"])) for s in summaries)
    assert total == D("60.00")
    assert_ledger_invariants(engine.store_url)


def test_every_route_needs_a_bearer_token(engine, tls):
    base = f"{engine.facade_url}/services/data/v60.0"
    for method, path in [("GET", "/sobjects/OrderSummary/1OsAAAAAAAAAAAAAAA"), ("POST", "/sobjects/OrderSummary"),
                         ("POST", "/" + ACTION.format("1OsAAAAAAAAAAAAAAA"))]:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = requests.request(method, base + path, headers=headers, json={}, verify=str(tls[0]))
            assert response.status_code == 401
            assert response.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_sobjects_round_trip_exact_amounts(sf, engine):
    order = sf.OrderSummary.create({"OrderNumber": "X-1", "CurrencyIsoCode": "JPY"})["id"]
    memo = sf.CreditMemo.create({"OrderSummaryId": order, "TotalAmount": 1500})["id"]
    got = sf.CreditMemo.get(memo)
    assert got["TotalAmount"] == 1500 and got["CurrencyIsoCode"] == "JPY" and got["Id"] == memo
    with pytest.raises(SalesforceError) as refused:
        sf.CreditMemo.create({"OrderSummaryId": order, "TotalAmount": 10.5})  # JPY has no minor unit
    assert refused.value.content[0]["errorCode"] == "INVALID_INPUT"
    with pytest.raises(SalesforceError) as missing:
        sf.CreditMemo.get("50gAAAAAAAAAAAAAAA")
    assert missing.value.status == 404
    with pytest.raises(SalesforceError):
        sf.Refund.create({"Amount": 1})  # refunds are made by the actions only


def test_a_retried_request_with_the_same_idempotency_key_refunds_once(sf, engine, tls):
    """The client's network failed after the POST: it retries with the same key and gets
    the same operation; the same key with another body is refused and starts nothing."""
    order, summaries, _memo, _ = set_up_order(sf, payments=[60.00])
    url = f"{engine.facade_url}/services/data/v60.0/" + ACTION.format(order)
    headers = {"Authorization": f"Bearer {engine.config.token}", "Idempotency-Key": f"retry-{uuid.uuid4()}"}
    first = requests.post(url, json={"excessFundsAmount": 10.00}, headers=headers, verify=str(tls[0]))
    again = requests.post(url, json={"excessFundsAmount": 10.00}, headers=headers, verify=str(tls[0]))
    assert first.status_code == again.status_code == 201
    operation_id = first.json()["backgroundOperationId"]
    assert again.json()["backgroundOperationId"] == operation_id
    assert wait_for_operation(sf, operation_id)["Status"] == "Complete"
    replay_after_completion = requests.post(url, json={"excessFundsAmount": 10.00}, headers=headers, verify=str(tls[0]))
    assert replay_after_completion.json()["backgroundOperationId"] == operation_id

    runs_before = count_requested_runs()
    changed = requests.post(url, json={"excessFundsAmount": 20.00}, headers=headers, verify=str(tls[0]))
    assert changed.status_code == 409 and changed.json()[0]["errorCode"] == "IDEMPOTENCY_KEY_REUSED"
    assert count_requested_runs() == runs_before
    assert D(str(sf.OrderPaymentSummary.get(summaries[0])["RefundedAmount"])) == D("10.00")
    assert_ledger_invariants(engine.store_url)


def test_a_token_without_the_refund_permission_is_refused(engine, tls):
    """Tokens carry permissions (OM_API_TOKENS); refunding needs 'refund', creating records 'write'."""
    response = requests.post(
        f"{engine.facade_url}/services/data/v60.0/" + ACTION.format("1OsAAAAAAAAAAAAAAA"),
        json={"excessFundsAmount": 1}, headers={"Authorization": "Bearer read-only-token"}, verify=str(tls[0]))
    assert response.status_code == 403 and response.json()[0]["errorCode"] == "INSUFFICIENT_ACCESS"
    create = requests.post(f"{engine.facade_url}/services/data/v60.0/sobjects/OrderSummary", json={"OrderNumber": "x"},
                           headers={"Authorization": "Bearer read-only-token"}, verify=str(tls[0]))
    assert create.status_code == 403
    read = requests.get(f"{engine.facade_url}/services/data/v60.0/sobjects/OrderSummary/1OsAAAAAAAAAAAAAAA",
                        headers={"Authorization": "Bearer read-only-token"}, verify=str(tls[0]))
    assert read.status_code == 404  # reading needs only a valid token


def test_many_concurrent_operations_on_one_order_never_refund_beyond_captured(sf, engine):
    """Seven operations, each in its own flow-run process, race for 100.00 in 20.00 pieces:
    the row lock lets exactly five through; the others end in Error having written nothing."""
    from concurrent.futures import ThreadPoolExecutor

    order, summaries, _memo, _ = set_up_order(sf, payments=[60.00, 40.00])
    with ThreadPoolExecutor(7) as pool:
        ids = list(pool.map(
            lambda _: sf.restful(ACTION.format(order), method="POST", json={"excessFundsAmount": 20})["backgroundOperationId"],
            range(7)))
    statuses = sorted(wait_for_operation(sf, i, timeout=240)["Status"] for i in ids)
    assert statuses == ["Complete"] * 5 + ["Error"] * 2, statuses
    refunded = sum(D(str(sf.OrderPaymentSummary.get(s)["RefundedAmount"])) for s in summaries)
    assert refunded == D("100.00")
    assert_ledger_invariants(engine.store_url)


FUNDS_ACTION = "commerce/order-management/order-summaries/{}/async-actions/ensure-funds-async"


def test_ensure_funds_through_the_facade_applies_captured_balance_then_captures(sf, engine):
    """Invoice 100.00 on an order with 30.00 captured and a 90.00 authorization: 30.00 is
    applied, 70.00 captured through the gateway; the invoice ends paid."""
    order, summaries, _memo, invoices = set_up_order(sf, payments=[30.00], invoices=[100.00])
    gateway = sf.PaymentGateway.create({"PaymentGatewayName": "e2e auth", "MerchantCredentialName": E2E_GATEWAY_BLOCK})["id"]
    card = sf.OrderPaymentSummary.create({"OrderSummaryId": order, "Method": "Card"})["id"]
    authorization = sf.PaymentAuthorization.create({"OrderPaymentSummaryId": card, "PaymentGatewayId": gateway, "Amount": 90.00})["id"]

    operation_id = sf.restful(FUNDS_ACTION.format(order), method="POST", json={"invoiceId": invoices[0]})["backgroundOperationId"]
    assert wait_for_operation(sf, operation_id)["Status"] == "Complete"
    assert D(str(sf.Invoice.get(invoices[0])["Balance"])) == D("0")
    captured = sf.PaymentAuthorization.get(authorization)
    assert D(str(captured["CapturedAmount"])) == D("70.00") and D(str(captured["AvailableToCaptureAmount"])) == D("20.00")
    assert D(str(sf.OrderPaymentSummary.get(card)["CapturedAmount"])) == D("70.00")
    assert_ledger_invariants(engine.store_url)


def test_ensure_funds_refuses_what_the_order_cannot_cover(sf, engine):
    order, _summaries, _memo, invoices = set_up_order(sf, payments=[30.00], invoices=[100.00])
    before = snapshot(engine.store_url)
    with pytest.raises(SalesforceError) as refused:
        sf.restful(FUNDS_ACTION.format(order), method="POST", json={"invoiceId": invoices[0]})
    assert refused.value.content[0]["errorCode"] == "INSUFFICIENT_FUNDS"
    assert refused.value.content[0]["output"] == {"backgroundOperationId": None}
    assert snapshot(engine.store_url) == before


def test_cancel_after_capture_credit_memo_and_refund_through_the_facade(sf, engine):
    order, summaries, _memo, _ = set_up_order(sf, payments=[32.97])
    mug = sf.OrderItemSummary.create({"OrderSummaryId": order, "Name": "mug", "UnitPrice": 9.99, "QuantityOrdered": 3,
                                      "TotalTaxAmount": 3.00})["id"]
    base = f"commerce/order-management/order-summaries/{order}/actions/"
    cancel = sf.restful(base + "submit-cancel", method="POST",
                        json={"changeItems": [{"orderItemSummaryId": mug, "quantity": 1, "reason": "changed mind"}]})
    assert D(str(cancel["totalAmount"])) == D("9.99") and D(str(cancel["totalTaxAmount"])) == D("1.00")
    assert sf.OrderItemSummary.get(mug)["QuantityAvailableToCancel"] == 2
    memo = sf.restful(base + "create-credit-memo", method="POST", json={"changeOrderIds": [cancel["changeOrderId"]]})["creditMemoId"]
    credited = sf.CreditMemo.get(memo)  # Salesforce's figures: TotalAmount pretax, the tax apart
    assert [D(str(credited[f])) for f in ("TotalAmountWithTax", "TotalAmount", "TotalTaxAmount", "Balance")] == [
        D("10.99"), D("9.99"), D("1.00"), D("10.99")]
    assert credited["ReferenceEntityId"] == credited["OrderSummaryId"] == order
    with pytest.raises(SalesforceError) as reused:
        sf.restful(base + "create-credit-memo", method="POST", json={"changeOrderIds": [cancel["changeOrderId"]]})
    assert reused.value.status == 400 and "used already" in reused.value.content[0]["message"]
    with pytest.raises(SalesforceError) as too_many:
        sf.restful(base + "submit-cancel", method="POST", json={"changeItems": [{"orderItemSummaryId": mug, "quantity": 3}]})
    assert too_many.value.content[0]["errorCode"] == "INVALID_INPUT"

    operation_id = sf.restful(ACTION.format(order), method="POST", json={"creditMemoId": memo})["backgroundOperationId"]
    assert wait_for_operation(sf, operation_id)["Status"] == "Complete"
    assert D(str(sf.OrderPaymentSummary.get(summaries[0])["RefundedAmount"])) == D("10.99")
    assert_ledger_invariants(engine.store_url)
