"""Flow Builder's core actions as deployments of their own (issue 12), run the way an
operator runs them from the Prefect UI: ``create_flow_run_from_deployment`` on the real
Prefect server, carried out by the warm executor of the engine, the store read back
through the REST facade with an unmodified Salesforce client.

The deployments enforce their parameter schema, so bad input is refused by the server with
the field at fault and no flow run is made; a run that is put back to Scheduled (what a
resume does) finds the records it made and makes nothing twice.
"""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal as D

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterId
from prefect.exceptions import PrefectHTTPStatusError
from prefect.states import Scheduled
from sqlmodel import Session, select

from db.engine import get_engine
from db.models import ChangeOrder, CreditMemo, Invoice, ReturnOrder, ReturnOrderLineItem
from runtime.serve import CORE_ACTIONS
from tests.e2e.test_order_lifecycle import new_order, quantities
from tests.e2e.test_record_triggered_flows import events_of
from tests.ledger import assert_ledger_invariants

pytestmark = pytest.mark.e2e
SOME_ID = "1Os000000000000AAA"


def _deployment_id(name: str) -> uuid.UUID:
    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(f"{name}/{name}").id


def _runs_of(name: str) -> int:
    with get_client(sync_client=True) as client:
        return client.count_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[_deployment_id(name)])))


def _run(name: str, parameters: dict, timeout: float = 120):
    """Start the deployment as the UI's Run button does and wait for the run to end."""
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run_from_deployment(_deployment_id(name), parameters=parameters)
        return _wait_final(client, flow_run.id, timeout)


def _wait_final(client, flow_run_id, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        flow_run = client.read_flow_run(flow_run_id)
        if flow_run.state is not None and flow_run.state.is_final():
            return flow_run
        time.sleep(0.2)
    raise AssertionError(f"flow run {flow_run_id} not final after {timeout} s: {flow_run.state}")


def _made(store_url: str, table, operation_id) -> list:
    with Session(get_engine(store_url)) as session:
        return list(session.exec(select(table).where(table.background_operation_id == str(operation_id))).all())


def test_every_core_action_is_a_served_deployment_that_enforces_its_schema(engine):
    with get_client(sync_client=True) as client:
        for name in CORE_ACTIONS:
            deployment = client.read_deployment_by_name(f"{name}/{name}")
            assert deployment.enforce_parameter_schema is True, name
            assert deployment.parameter_openapi_schema["required"], name
            assert "core-action" in deployment.tags


BAD_INPUTS = [
    ("submit-cancel", {"order_summary_id": SOME_ID, "submit_cancel_input": {"changeItems": [
        {"orderItemSummaryId": "10u000000000000AAA", "quantity": "two"}]}}, "quantity"),
    ("submit-cancel", {"order_summary_id": SOME_ID, "submit_cancel_input": {"changeItems": [
        {"orderItemSummaryId": "10u000000000000AAA", "quantity": -1}]}}, "quantity"),
    ("submit-return", {"order_summary_id": SOME_ID, "submit_return_input": {"changeItems": []}}, "changeItems"),
    ("submit-return", {"submit_return_input": {"changeItems": [
        {"orderItemSummaryId": "10u000000000000AAA", "quantity": 1}]}}, "order_summary_id"),
    ("create-credit-memo", {"order_summary_id": "not-an-id", "create_credit_memo_input": {
        "changeOrderIds": ["801000000000000AAA"]}}, "order_summary_id"),
    ("create-invoice-from-change-orders", {"order_summary_id": SOME_ID, "create_invoice_input": {
        "changeOrderIds": "801000000000000AAA"}}, "changeOrderIds"),
    ("create-return-order", {"create_return_order_input": {"orderSummaryId": SOME_ID, "returnOrderLineItems": [
        {"orderItemSummaryId": "10u000000000000AAA", "quantityExpected": 1}],
        "returnOrderFees": [{"name": "shipping", "amount": -5}]}}, "amount"),
    ("return-return-order-items", {"return_order_id": SOME_ID, "return_items_input": {"returnOrderItems": [
        {"returnOrderLineItemId": "0RL000000000000AAA", "quantityReceived": 1, "bogus": True}]}}, "bogus"),
    ("fulfil-items", {"order_summary_id": SOME_ID, "fulfill_items_input": {}}, "fulfillmentItems"),
    ("ensure-refunds-async", {"order_summary_id": SOME_ID, "ensure_refunds_input": {
        "creditMemoId": "50g000000000000AAA", "excessFundsAmount": -0.01}}, "excessFundsAmount"),
    ("ensure-refunds-async", {"order_summary_id": SOME_ID, "ensure_refunds_input": {
        "creditMemoId": "50g000000000000AAA", "strategy": "Random"}}, "strategy"),
    ("ensure-refunds-async", {"order_summary_id": SOME_ID, "ensure_refunds_input": {
        "excessFundsAmount": "19.99"}}, "excessFundsAmount"),
    ("ensure-funds-async", {"order_summary_id": SOME_ID, "ensure_funds_input": {}}, "invoiceId"),
    ("ensure-funds-async", {"ensure_funds_input": {"invoiceId": "3tt000000000000AAA"}}, "order_summary_id"),
    ("refund-payment", {"refund_payment_input": {"chargeId": "0a3000000000000AAA", "amount": "ten"}}, "amount"),
    ("refund-payment", {"refund_payment_input": {"chargeId": "short", "amount": 1}}, "chargeId"),
]


@pytest.mark.parametrize(("name", "parameters", "field"), BAD_INPUTS,
                         ids=[f"{name}-{field}-{i}" for i, (name, _p, field) in enumerate(BAD_INPUTS)])
def test_bad_parameters_are_refused_by_the_server_and_make_no_run(engine, name, parameters, field):
    before = _runs_of(name)
    with get_client(sync_client=True) as client, pytest.raises(PrefectHTTPStatusError) as refused:
        client.create_flow_run_from_deployment(_deployment_id(name), parameters=parameters)
    assert refused.value.response.status_code == 409
    assert "Validation failed" in refused.value.response.text and field in refused.value.response.text
    assert _runs_of(name) == before


def test_an_order_changed_returned_and_credited_through_the_core_action_deployments(sf, engine):
    """Fulfil, cancel, return, receive, credit and invoice the fee, each its own deployment
    run; the records are keyed by the run that made them and the ledger holds after each."""
    check = lambda: assert_ledger_invariants(engine.store_url)  # noqa: E731
    order, shirt, mug, _paid, _held, _authorization = new_order(sf, captured=99, authorized=1)

    shipped = _run("fulfil-items", {"order_summary_id": order, "fulfill_items_input": {"fulfillmentItems": [
        {"orderItemSummaryId": mug, "quantity": 2}]}})
    assert shipped.state.is_completed(), shipped.state.message
    [invoice] = _made(engine.store_url, Invoice, shipped.id)
    assert invoice.total_amount == D("33.00") and quantities(sf, mug) == (2, 0, 2, 0, 0)
    check()

    cancelled = _run("submit-cancel", {"order_summary_id": order, "submit_cancel_input": {"changeItems": [
        {"orderItemSummaryId": shirt, "quantity": 1, "reason": "out of stock"}]}})
    assert cancelled.state.is_completed(), cancelled.state.message
    [cancel] = _made(engine.store_url, ChangeOrder, cancelled.id)
    assert quantities(sf, shirt) == (3, 1, 0, 0, 0)

    credited = _run("create-credit-memo", {"order_summary_id": order, "create_credit_memo_input": {
        "changeOrderIds": [cancel.id]}})
    assert credited.state.is_completed(), credited.state.message
    [memo] = _made(engine.store_url, CreditMemo, credited.id)
    assert memo.total_amount == D("22.00")  # 20.00 + 2.00 tax
    # the typed output is the run's persisted result; the run page holds the memo's lines
    assert credited.state.result() == {"credit_memo_id": memo.id, "total_amount": "22.00"}
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[credited.id])))
    by_key = {a.key: a for a in artifacts}
    table = json.loads(by_key[f"credit-memo-{memo.id.lower()}"].data)
    assert [(row["Charge"], row["Tax"]) for row in table] == [("20.00 USD", "2.00 USD")]
    assert f"/sobjects/CreditMemo/{memo.id}" in by_key[f"credit-memo-{memo.id.lower()}"].description  # its summary
    assert [a.type for a in artifacts if a.type in ("table", "markdown")] == ["table"]  # summary: its description
    check()

    returning = _run("create-return-order", {"create_return_order_input": {
        "orderSummaryId": order, "returnOrderLineItems": [{"orderItemSummaryId": mug, "quantityExpected": 1}],
        "returnOrderFees": [{"name": "return shipping", "amount": 4.99}]}})
    assert returning.state.is_completed(), returning.state.message
    [return_order] = _made(engine.store_url, ReturnOrder, returning.id)
    with Session(get_engine(engine.store_url)) as session:
        lines = session.exec(select(ReturnOrderLineItem).where(ReturnOrderLineItem.return_order_id == return_order.id)).all()
    [line] = [x for x in lines if x.order_item_summary_id == mug]
    [fee] = [x for x in lines if x.order_item_summary_id is None]
    assert fee.fee_amount == D("4.99")  # a JSON number through the enforced schema, exact
    assert quantities(sf, mug) == (2, 0, 2, 1, 0)

    received = _run("return-return-order-items", {"return_order_id": return_order.id, "return_items_input": {
        "returnOrderItems": [{"returnOrderLineItemId": line.id, "quantityReceived": 1}],
        "returnOrderItemFees": [{"returnOrderLineItemId": fee.id}]}})
    assert received.state.is_completed(), received.state.message
    made = {str(c.type): c for c in _made(engine.store_url, ChangeOrder, received.id)}
    assert set(made) == {"Return", "Fee"} and quantities(sf, mug) == (2, 0, 2, 1, 1)

    invoiced = _run("create-invoice-from-change-orders", {"order_summary_id": order, "create_invoice_input": {
        "changeOrderIds": [made["Fee"].id]}})
    assert invoiced.state.is_completed(), invoiced.state.message
    [fee_invoice] = _made(engine.store_url, Invoice, invoiced.id)
    assert fee_invoice.total_amount == D("4.99")
    check()

    # Each run's typed output is its persisted result, and its run page holds what it made.
    def artifacts_of(run) -> dict:
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
        return {a.key: a for a in found}

    assert shipped.state.result()["invoice_id"] == invoice.id and shipped.state.result()["total_amount"] == "33.00"
    assert f"invoice-{invoice.id.lower()}" in artifacts_of(shipped)
    assert cancelled.state.result()["change_order_id"] == cancel.id
    assert json.loads(artifacts_of(cancelled)[f"change-order-{cancel.id.lower()}"].data)[0]["Amount"] == "20.00 USD"
    assert returning.state.result()["return_order_id"] == return_order.id
    assert returning.state.result()["fee_line_item_ids"] == [fee.id]
    assert len(json.loads(artifacts_of(returning)[f"return-order-{return_order.id.lower()}"].data)) == 2
    assert received.state.result()["fee_change_order_id"] == made["Fee"].id
    received_rows = json.loads(artifacts_of(received)[f"return-order-items-{return_order.id.lower()}"].data)
    assert {row["Kind"] for row in received_rows} == {"Return", "Fee"}
    assert invoiced.state.result() == {"invoice_id": fee_invoice.id, "total_amount": "4.99"}
    summary = artifacts_of(invoiced)[f"invoice-{fee_invoice.id.lower()}"].description  # markdown, shown with the table
    assert summary.startswith("### Invoice") and f"/sobjects/Invoice/{fee_invoice.id}" in summary

    # Each run announced exactly its records, once, after its commit, related by role.
    def one(resource: str, name: str) -> dict:
        [event] = events_of(resource, name, wait_for=1)
        return event

    fulfilment = one(f"om.invoice.{invoice.id}", "om.invoice.created")
    assert fulfilment["resource"]["om.source"] == "Fulfillment" and fulfilment["payload"]["totalAmount"] == "33.00"
    assert one(f"om.change-order.{cancel.id}", "om.change-order.created")["payload"]["type"] == "Cancel"
    assert one(f"om.credit-memo.{memo.id}", "om.credit-memo.created")["payload"]["changeOrderIds"] == cancel.id
    assert one(f"om.return-order.{return_order.id}", "om.return-order.created")["payload"]["lineCount"] == "2"
    returned = one(f"om.return-order.{return_order.id}", "om.return-order.items-returned")
    assert sorted(r["prefect.resource.id"] for r in returned["related"] if r["prefect.resource.role"] == "change-order") == \
        sorted(f"om.change-order.{c.id}" for c in made.values())
    for change_order in made.values():
        event = one(f"om.change-order.{change_order.id}", "om.change-order.created")
        assert event["payload"]["returnOrderId"] == return_order.id
    fee = one(f"om.invoice.{fee_invoice.id}", "om.invoice.created")
    assert fee["resource"]["om.source"] == "ChangeOrders" and fee["payload"]["totalAmount"] == "4.99"
    # inside a run Prefect relates the flow run too
    assert f"prefect.flow-run.{invoiced.id}" in [r["prefect.resource.id"] for r in fee["related"]]


def test_a_resumed_core_action_run_makes_nothing_twice(sf, engine):
    """Put a completed create-return-order run back to Scheduled (what the executor does
    when it resumes a run whose executor died): it runs again under the same id, finds the
    return order it made and makes no second one."""
    order, _shirt, mug, _paid, _held, _authorization = new_order(sf, captured=99, authorized=1)
    assert _run("fulfil-items", {"order_summary_id": order, "fulfill_items_input": {"fulfillmentItems": [
        {"orderItemSummaryId": mug, "quantity": 2}]}}).state.is_completed()
    first = _run("create-return-order", {"create_return_order_input": {
        "orderSummaryId": order, "returnOrderLineItems": [{"orderItemSummaryId": mug, "quantityExpected": 1}]}})
    assert first.state.is_completed(), first.state.message
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(first.id, Scheduled(), force=True)
        again = _wait_final(client, first.id)
    assert again.state.is_completed(), again.state.message
    assert again.run_count > first.run_count
    [return_order] = _made(engine.store_url, ReturnOrder, first.id)
    assert quantities(sf, mug) == (2, 0, 2, 1, 0)  # one unit return-initiated, not two
    # told again by the second run, under the same event id: one event
    time.sleep(2)
    assert len(events_of(f"om.return-order.{return_order.id}", "om.return-order.created", wait_for=1)) == 1
    assert_ledger_invariants(engine.store_url)


def test_refund_payment_and_ensure_funds_runs_keep_their_result_and_artifacts(sf, engine):
    from tests.e2e.conftest import E2E_GATEWAY_BLOCK

    gateway = sf.PaymentGateway.create({"PaymentGatewayName": "e2e sandbox", "MerchantCredentialName": E2E_GATEWAY_BLOCK})["id"]
    order = sf.OrderSummary.create({"OrderNumber": f"RP-{uuid.uuid4().hex[:6]}", "CurrencyIsoCode": "USD"})["id"]
    summary = sf.OrderPaymentSummary.create({"OrderSummaryId": order, "Method": "Card"})["id"]
    payment = sf.Payment.create({"OrderPaymentSummaryId": summary, "PaymentGatewayId": gateway, "Amount": 30})["id"]
    invoice = sf.Invoice.create({"OrderSummaryId": order, "TotalAmount": 12.5})["id"]

    refunded = _run("refund-payment", {"refund_payment_input": {"chargeId": payment, "amount": 7.05, "reason": "damaged"}})
    assert refunded.state.is_completed(), refunded.state.message
    result = refunded.state.result()
    assert (result["charge_id"], result["amount"], result["status"]) == (payment, "7.05", "SUCCEEDED")
    with get_client(sync_client=True) as client:
        artifacts = {a.key: a for a in client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[refunded.id])))}
    [row] = json.loads(artifacts[f"refund-{result['id'].lower()}"].data)
    assert (row["Charge"], row["Amount"], row["Status"]) == (payment, "7.05 USD", "SUCCEEDED")

    funded = _run("ensure-funds-async", {"order_summary_id": order, "ensure_funds_input": {"invoiceId": invoice}})
    assert funded.state.is_completed(), funded.state.message
    assert funded.state.result()["invoice_balance"] == "0.00"
    with get_client(sync_client=True) as client:
        artifacts = {a.key: a for a in client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[funded.id])))}
    [applied] = json.loads(artifacts[f"invoice-funds-{invoice.lower()}"].data)
    assert (applied["Payment"], applied["Amount"]) == (payment, "12.50 USD")
    assert_ledger_invariants(engine.store_url)
