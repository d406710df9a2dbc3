"""A whole order's life through the REST facade with an unmodified Salesforce client
(issue 3): paid by two methods (one captured, one authorized), partly cancelled,
fulfilled and invoiced, funds ensured, two items returned with a return fee, refunded.
After every step the ledger invariants hold, item quantities included."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
import requests
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from simple_salesforce.exceptions import SalesforceError

from tests.e2e.conftest import E2E_GATEWAY_BLOCK, count_requested_runs
from tests.e2e.test_ensure_refunds_async import wait_for_operation
from tests.ledger import assert_ledger_invariants, snapshot

pytestmark = pytest.mark.e2e
ORDERS = "commerce/order-management/order-summaries/{}/"
RETURNS = "commerce/returns/return-orders"


def money(record, field) -> D:
    return D(str(record[field]))


def quantities(sf, item_id) -> tuple:
    item = sf.OrderItemSummary.get(item_id)
    return tuple(D(str(item[f])) for f in ("QuantityOrdered", "QuantityCanceled", "QuantityFulfilled",
                                          "QuantityReturnInitiated", "QuantityReturned"))


def new_order(sf, *, captured, authorized):
    """An order of 3 shirts (20.00, tax 6.00) and 2 mugs (15.00, tax 3.00) = 99.00, paid by a
    card payment captured at checkout and a second card only authorized."""
    gateway = sf.PaymentGateway.create({"PaymentGatewayName": "e2e sandbox", "MerchantCredentialName": E2E_GATEWAY_BLOCK})["id"]
    order = sf.OrderSummary.create({"OrderNumber": f"LIFE-{uuid.uuid4().hex[:6]}", "CurrencyIsoCode": "USD"})["id"]
    shirt = sf.OrderItemSummary.create({"OrderSummaryId": order, "Name": "shirt", "UnitPrice": 20, "QuantityOrdered": 3,
                                        "TotalTaxAmount": 6})["id"]
    mug = sf.OrderItemSummary.create({"OrderSummaryId": order, "Name": "mug", "UnitPrice": 15, "QuantityOrdered": 2,
                                      "TotalTaxAmount": 3})["id"]
    paid = sf.OrderPaymentSummary.create({"OrderSummaryId": order, "Method": "Card"})["id"]
    sf.Payment.create({"OrderPaymentSummaryId": paid, "PaymentGatewayId": gateway, "Amount": captured})
    held = sf.OrderPaymentSummary.create({"OrderSummaryId": order, "Method": "Card"})["id"]
    authorization = sf.PaymentAuthorization.create({"OrderPaymentSummaryId": held, "PaymentGatewayId": gateway,
                                                    "Amount": authorized})["id"]
    return order, shirt, mug, paid, held, authorization


def test_an_order_from_payment_to_refund(sf, engine):
    check = lambda: assert_ledger_invariants(engine.store_url)  # noqa: E731
    order, shirt, mug, paid, held, authorization = new_order(sf, captured=40, authorized=59)
    check()

    # 1. One shirt cancelled before shipping: the authorization simply will not be captured
    #    for it, so no credit memo and no refund.
    cancel = sf.restful(ORDERS.format(order) + "actions/submit-cancel", method="POST",
                        json={"changeItems": [{"orderItemSummaryId": shirt, "quantity": 1, "reason": "out of stock"}]})
    assert (D(str(cancel["totalAmount"])), D(str(cancel["totalTaxAmount"]))) == (D("20.00"), D("2.00"))
    assert D(str(cancel["changeBalances"]["totalExcessFundsAmount"])) == 0  # 40.00 held, 77.00 still due
    assert quantities(sf, shirt) == (3, 1, 0, 0, 0)
    check()

    # 2. The rest ships and is invoiced: 2 shirts 44.00 + 2 mugs 33.00.
    invoice = sf.restful(ORDERS.format(order) + "actions/fulfill-items", method="POST", json={"fulfillmentItems": [
        {"orderItemSummaryId": shirt, "quantity": 2}, {"orderItemSummaryId": mug, "quantity": 2}]})
    assert D(str(invoice["totalAmount"])) == D("77.00")
    assert quantities(sf, shirt) == (3, 1, 2, 0, 0) and quantities(sf, mug) == (2, 0, 2, 0, 0)
    check()

    # 3. Funds ensured: the 40.00 captured is applied, 37.00 captured from the authorization.
    operation = sf.restful(ORDERS.format(order) + "async-actions/ensure-funds-async", method="POST",
                           json={"invoiceId": invoice["invoiceId"]})["backgroundOperationId"]
    assert wait_for_operation(sf, operation)["Status"] == "Complete"
    assert money(sf.Invoice.get(invoice["invoiceId"]), "Balance") == 0
    assert money(sf.PaymentAuthorization.get(authorization), "CapturedAmount") == D("37.00")
    assert money(sf.OrderPaymentSummary.get(held), "CapturedAmount") == D("37.00")
    assert money(sf.OrderPaymentSummary.get(paid), "CapturedAmount") == D("40.00")
    check()

    # 4. A shirt and a mug come back, with a 5.00 return fee.
    return_order = sf.restful(RETURNS, method="POST", json={
        "orderSummaryId": order,
        "returnOrderLineItems": [{"orderItemSummaryId": shirt, "quantityExpected": 1, "reasonForReturn": "too small"},
                                 {"orderItemSummaryId": mug, "quantityExpected": 1, "reasonForReturn": "chipped"}],
        "returnOrderFees": [{"name": "return shipping", "amount": 5}]})
    assert quantities(sf, shirt) == (3, 1, 2, 1, 0) and quantities(sf, mug) == (2, 0, 2, 1, 0)
    check()

    # 5. Received and refunded in one operation: credit 22.00 + 16.50, the fee paid from it,
    #    33.50 refunded (to the 40.00 card: seed 000 takes the largest when none matches).
    lines = return_order["returnOrderLineItemIds"]
    operation = sf.restful("actions/custom/flow/return_to_refund", method="POST", json={"inputs": [{
        "returnOrderId": return_order["returnOrderId"],
        "returnItemsInput": {
            "returnOrderItems": [{"returnOrderLineItemId": line, "quantityReceived": 1} for line in lines],
            "returnOrderItemFees": [{"returnOrderLineItemId": return_order["feeLineItemIds"][0]}]}}]})
    assert operation[0]["isSuccess"] is True
    finished = wait_for_operation(sf, operation[0]["outputValues"]["backgroundOperationId"])
    assert finished["Status"] == "Complete", finished
    assert money(sf.OrderPaymentSummary.get(paid), "RefundedAmount") == D("33.50")
    assert money(sf.OrderPaymentSummary.get(held), "RefundedAmount") == 0
    assert quantities(sf, shirt) == (3, 1, 2, 1, 1) and quantities(sf, mug) == (2, 0, 2, 1, 1)
    assert sf.ReturnOrder.get(return_order["returnOrderId"])["Status"] == "Closed"
    check()

    # Where the money ended: 99.00 ordered, 22.00 cancelled, 77.00 paid, 38.50 returned with
    # a 5.00 fee kept: 43.50 stays captured.
    summaries = [sf.OrderPaymentSummary.get(s) for s in (paid, held)]
    assert sum(money(s, "CapturedAmount") - money(s, "RefundedAmount") for s in summaries) == D("43.50")


def test_invoice_to_funds_flow_through_the_facade(sf, engine):
    order, shirt, mug, paid, held, authorization = new_order(sf, captured=10, authorized=89)
    answer = sf.restful("actions/custom/flow/invoice_to_funds", method="POST", json={"inputs": [{
        "orderSummaryId": order, "fulfillItemsInput": {"fulfillmentItems": [{"orderItemSummaryId": mug, "quantity": 2}]}}]})
    operation_id = answer[0]["outputValues"]["backgroundOperationId"]
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(uuid.UUID(operation_id))
    assert flow_run.parameters == {"composition": "invoice-to-funds", "inputs": {
        "orderSummaryId": order, "fulfillItemsInput": {"fulfillmentItems": [{"orderItemSummaryId": mug, "quantity": 2}]}}}
    assert wait_for_operation(sf, operation_id)["Status"] == "Complete"
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
    assert sorted(t.name for t in task_runs) == ["funds · ensure-funds-async", "invoice · fulfil-items"]  # a task run a step
    assert money(sf.OrderPaymentSummary.get(held), "CapturedAmount") == D("23.00")  # 33.00 - the 10.00 captured
    assert quantities(sf, mug) == (2, 0, 2, 0, 0)
    assert_ledger_invariants(engine.store_url)


def test_bad_requests_change_nothing_and_start_nothing(sf, engine):
    order, shirt, mug, *_ = new_order(sf, captured=99, authorized=1)
    other, other_shirt, *_ = new_order(sf, captured=99, authorized=1)
    sf.restful(ORDERS.format(order) + "actions/fulfill-items", method="POST",
               json={"fulfillmentItems": [{"orderItemSummaryId": shirt, "quantity": 1}]})
    return_order = sf.restful(RETURNS, method="POST", json={
        "orderSummaryId": order, "returnOrderLineItems": [{"orderItemSummaryId": shirt, "quantityExpected": 1}]})
    before = snapshot(engine.store_url)
    runs_before = count_requested_runs()
    refused = [
        (ORDERS.format(order) + "actions/fulfill-items", {"fulfillmentItems": [{"orderItemSummaryId": shirt, "quantity": 3}]}),
        (ORDERS.format(order) + "actions/submit-return", {"changeItems": [{"orderItemSummaryId": mug, "quantity": 1}]}),
        (ORDERS.format(order) + "actions/submit-cancel", {"changeItems": [{"orderItemSummaryId": other_shirt, "quantity": 1}]}),
        (ORDERS.format(order) + "actions/create-invoice-from-change-orders", {"changeOrderIds": ["801AAAAAAAAAAAAAAA"]}),
        (RETURNS, {"orderSummaryId": order, "returnOrderLineItems": [{"orderItemSummaryId": shirt, "quantityExpected": 1}]}),
        (RETURNS, {"orderSummaryId": other, "returnOrderLineItems": [{"orderItemSummaryId": shirt, "quantityExpected": 1}]}),
        (f"{RETURNS}/{return_order['returnOrderId']}/actions/return-items",
         {"returnOrderItems": [{"returnOrderLineItemId": return_order["returnOrderLineItemIds"][0], "quantityReceived": 2}]}),
        ("actions/custom/flow/return_to_refund", {"inputs": [{
            "returnOrderId": return_order["returnOrderId"], "returnItemsInput": {"returnOrderItems": [
                {"returnOrderLineItemId": return_order["returnOrderLineItemIds"][0], "quantityReceived": 2}]}}]}),
        ("actions/custom/flow/invoice_to_funds", {"inputs": [{
            "orderSummaryId": order, "fulfillItemsInput": {"fulfillmentItems": [{"orderItemSummaryId": other_shirt,
                                                                                 "quantity": 1}]}}]}),
    ]
    for path, body in refused:
        with pytest.raises(SalesforceError) as error:
            sf.restful(path, method="POST", json=body)
        assert error.value.status in (400, 404), (path, error.value.content)
        assert error.value.content[0]["errorCode"] and error.value.content[0]["message"], path
    with pytest.raises(SalesforceError) as unknown:
        sf.restful("actions/custom/flow/no_such_flow", method="POST", json={"inputs": [{}]})
    assert unknown.value.status == 404
    assert snapshot(engine.store_url) == before
    assert count_requested_runs() == runs_before


def test_a_retried_sync_action_with_the_same_idempotency_key_acts_once(sf, engine, tls):
    """The network failed after submit-cancel: the retry under the same key gets the same
    change order and cancels nothing more; the key with another body is refused."""
    order, shirt, *_ = new_order(sf, captured=99, authorized=1)
    url = f"{engine.facade_url}/services/data/v60.0/" + ORDERS.format(order) + "actions/submit-cancel"
    headers = {"Authorization": f"Bearer {engine.config.token}", "Idempotency-Key": f"cancel-{uuid.uuid4()}"}
    body = {"changeItems": [{"orderItemSummaryId": shirt, "quantity": 1}]}
    first = requests.post(url, json=body, headers=headers, verify=str(tls[0]))
    again = requests.post(url, json=body, headers=headers, verify=str(tls[0]))
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
    assert quantities(sf, shirt)[1] == 1
    changed = requests.post(url, json={"changeItems": [{"orderItemSummaryId": shirt, "quantity": 2}]}, headers=headers,
                            verify=str(tls[0]))
    assert changed.status_code == 409 and changed.json()[0]["errorCode"] == "IDEMPOTENCY_KEY_REUSED"
    other_caller = requests.post(url, json=body, verify=str(tls[0]), headers={**headers, "Authorization": "Bearer read-only-token"})
    assert other_caller.status_code == 403
    assert quantities(sf, shirt)[1] == 1
    assert_ledger_invariants(engine.store_url)


def test_composed_flows_need_their_permissions(engine, tls):
    base = f"{engine.facade_url}/services/data/v60.0/actions/custom/flow/"
    for name in ("return_to_refund", "invoice_to_funds", "cancel_to_refund"):
        response = requests.post(base + name, json={"inputs": [{}]}, verify=str(tls[0]),
                                 headers={"Authorization": "Bearer read-only-token"})
        assert response.status_code == 403 and response.json()[0]["errorCode"] == "INSUFFICIENT_ACCESS"


def test_racing_retries_under_one_key_act_once(sf, engine, tls):
    """Six copies of one request race under the same key: each answers the same change
    order, and one unit is cancelled."""
    from concurrent.futures import ThreadPoolExecutor

    order, shirt, *_ = new_order(sf, captured=99, authorized=1)
    url = f"{engine.facade_url}/services/data/v60.0/" + ORDERS.format(order) + "actions/submit-cancel"
    headers = {"Authorization": f"Bearer {engine.config.token}", "Idempotency-Key": f"race-{uuid.uuid4()}"}
    body = {"changeItems": [{"orderItemSummaryId": shirt, "quantity": 1}]}
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: requests.post(url, json=body, headers=headers, verify=str(tls[0])), range(6)))
    assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
    assert len({a.json()["changeOrderId"] for a in answers}) == 1
    assert quantities(sf, shirt)[1] == 1
    assert_ledger_invariants(engine.store_url)


def test_inputs_that_together_ask_too_much_start_nothing(sf, engine):
    """Each input alone could cancel 2 of the 3 shirts; together they cannot: refused, no run."""
    order, shirt, *_ = new_order(sf, captured=99, authorized=1)
    before = snapshot(engine.store_url)
    runs_before = count_requested_runs()
    one = {"orderSummaryId": order, "submitCancelInput": {"changeItems": [{"orderItemSummaryId": shirt, "quantity": 2}]}}
    with pytest.raises(SalesforceError) as refused:
        sf.restful("actions/custom/flow/cancel_to_refund", method="POST", json={"inputs": [one, one]})
    assert refused.value.status == 400 and "exceeds" in refused.value.content[0]["message"]
    assert count_requested_runs() == runs_before
    assert snapshot(engine.store_url) == before


def test_a_cancel_after_capture_frees_excess_funds_that_ensure_refunds_returns(sf, engine):
    order, shirt, mug, paid, held, _authorization = new_order(sf, captured=99, authorized=1)
    cancel = sf.restful(ORDERS.format(order) + "actions/submit-cancel", method="POST",
                        json={"changeItems": [{"orderItemSummaryId": mug, "quantity": 1}]})
    excess = D(str(cancel["changeBalances"]["totalExcessFundsAmount"]))
    assert excess == D("16.50") and D(str(cancel["changeBalances"]["grandTotalAmount"])) == D("16.50")
    operation = sf.restful(ORDERS.format(order) + "async-actions/ensure-refunds-async", method="POST",
                           json={"excessFundsAmount": float(excess)})["backgroundOperationId"]
    assert wait_for_operation(sf, operation)["Status"] == "Complete"
    assert money(sf.OrderPaymentSummary.get(paid), "RefundedAmount") == D("16.50")
    again = sf.restful(ORDERS.format(order) + "actions/submit-cancel", method="POST",
                       json={"changeItems": [{"orderItemSummaryId": shirt, "quantity": 1}]})
    assert D(str(again["changeBalances"]["totalExcessFundsAmount"])) == D("22.00")  # the 16.50 is not counted twice
    assert_ledger_invariants(engine.store_url)
