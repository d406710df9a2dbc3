"""Record-triggered flows (issue 12): an automation on one of our events starts an action's
deployment with parameters templated from the event, on the real Prefect server, with the
record changes made through the REST facade by an unmodified Salesforce client.

Every record change is an event ``om.<record>.<verb>`` emitted once its transaction has
committed, with the record as resource and the records a next step needs related by role.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from decimal import Decimal as D
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from sqlmodel import Session, select

from db.engine import get_engine
from db.models import InteractionStatus, InteractionType, PaymentGatewayLog, ProcessException, Refund, RefundStatus
from runtime.automations import (
    NOTIFICATION_BLOCK, PROCESS_EXCEPTION_AUTOMATION, apply_notification_automation, apply_shipped_automations, shipped_triggers,
)
from tests.e2e.test_ensure_refunds_async import ACTION, set_up_order, wait_for_operation
from tests.e2e.test_order_lifecycle import ORDERS, new_order
from tests.ledger import assert_ledger_invariants

pytestmark = pytest.mark.e2e


def events_of(resource_id: str, name: str | None = None, *, wait_for: int = 0, timeout: float = 30) -> list[dict]:
    """Events about one resource, read back through Prefect's events API."""
    body = {"filter": {"resource": {"id": [resource_id]}, "occurred": {"since": "2020-01-01T00:00:00Z"},
                       **({"event": {"name": [name]}} if name else {})}, "limit": 50}
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            events = client._client.post("/events/filter", json=body).raise_for_status().json()["events"]
            if len(events) >= wait_for or time.monotonic() > deadline:
                return events
            time.sleep(0.3)


def related(event: dict, role: str) -> list[str]:
    return [r["prefect.resource.id"] for r in event["related"] if r.get("prefect.resource.role") == role]


def runs_of(deployment: str) -> list:
    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name(f"{deployment}/{deployment}").id
        return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


def wait_for_run(deployment: str, matches, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in runs_of(deployment):
            if matches(run.parameters) and run.state is not None and run.state.is_final():
                return run
        time.sleep(0.5)
    raise AssertionError(f"no finished run of {deployment} for these parameters in {timeout} s")


def returned_and_credited(sf, engine):
    """An order with 40.00 captured; a shirt (20.00 + 2.00 tax) returned through REST."""
    order, shirt, _mug, paid, _held, _authorization = new_order(sf, captured=40, authorized=59)
    sf.restful(ORDERS.format(order) + "actions/fulfill-items", method="POST",
               json={"fulfillmentItems": [{"orderItemSummaryId": shirt, "quantity": 1}]})
    change = sf.restful(ORDERS.format(order) + "actions/submit-return", method="POST",
                        json={"changeItems": [{"orderItemSummaryId": shirt, "quantity": 1, "reason": "too small"}]})
    return order, paid, change


def test_an_automation_built_as_in_the_ui_refunds_each_new_credit_memo_once(sf, engine, automation):
    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name("ensure-refunds-async/ensure-refunds-async").id
    automation({
        "name": f"refund credit memos {uuid.uuid4().hex[:6]}", "description": "", "enabled": True,
        "trigger": {"type": "event", "posture": "Reactive", "expect": ["om.credit-memo.created"],
                    "match": {"prefect.resource.id": "om.credit-memo.*"},
                    "match_related": {"prefect.resource.role": "change-order"},
                    "for_each": ["prefect.resource.id"], "after": [], "threshold": 1, "within": 0},
        "actions": [{"type": "run-deployment", "source": "selected", "deployment_id": str(deployment_id),
                     "job_variables": {},
                     "parameters": {
                         "order_summary_id": {"__prefect_kind": "jinja", "template": "{{ event.payload.orderSummaryId }}"},
                         "ensure_refunds_input": {
                             "creditMemoId": {"__prefect_kind": "jinja", "template": "{{ event.payload.creditMemoId }}"}}}}],
    })
    order, paid, change = returned_and_credited(sf, engine)
    memo = sf.restful(ORDERS.format(order) + "actions/create-credit-memo", method="POST",
                      json={"changeOrderIds": [change["changeOrderId"]]})["creditMemoId"]

    created = events_of(f"om.credit-memo.{memo}", "om.credit-memo.created", wait_for=1)
    assert len(created) == 1
    [order_created] = events_of(f"om.order-summary.{order}", "om.order-summary.created", wait_for=1)
    assert order_created["payload"]["currencyIsoCode"] == "USD" and order_created["resource"]["om.source"] == "Direct"
    assert related(created[0], "order-summary") == [f"om.order-summary.{order}"]
    assert related(created[0], "change-order") == [f"om.change-order.{change['changeOrderId']}"]
    assert created[0]["payload"]["totalAmount"] == "22.00" and created[0]["payload"]["currencyIsoCode"] == "USD"

    run = wait_for_run("ensure-refunds-async", lambda p: p.get("ensure_refunds_input", {}).get("creditMemoId") == memo)
    assert run.state.is_completed(), run.state
    assert run.parameters["order_summary_id"] == order
    with Session(get_engine(engine.store_url)) as session:
        refunds = session.exec(select(Refund).where(Refund.credit_memo_id == memo)).all()
        assert [(r.amount, r.status, r.order_payment_summary_id) for r in refunds] == [(D("22.00"), RefundStatus.PROCESSED, paid)]
        logs = session.exec(select(PaymentGatewayLog).where(PaymentGatewayLog.reference_entity_id == refunds[0].id)).all()
        assert [(log.interaction_type, log.interaction_status) for log in logs] == [
            (InteractionType.REFUND, InteractionStatus.SUCCESS)]
    assert_ledger_invariants(engine.store_url)

    # The run's own events (refund pending, processed) relate the credit memo but match no
    # trigger: nothing more is started, however long we wait.
    processed = events_of(f"om.refund.{refunds[0].id}", "om.refund.processed", wait_for=1)
    assert related(processed[0], "credit-memo") == [f"om.credit-memo.{memo}"]
    assert related(processed[0], "order-summary") == [f"om.order-summary.{order}"]
    time.sleep(5)
    started = [r for r in runs_of("ensure-refunds-async") if r.parameters.get("order_summary_id") == order]
    assert len(started) == 1


def run_deployment(name: str, parameters: dict):
    """Start a deployment as the UI's Run button does; returns the flow run once final."""
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(client.read_deployment_by_name(f"{name}/{name}").id,
                                                     parameters=parameters)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            run = client.read_flow_run(run.id)
            if run.state is not None and run.state.is_final():
                return run
            time.sleep(0.3)
    raise AssertionError(f"{name} run {run.id} not final: {run.state}")


def test_the_shipped_triggers_pay_a_fulfilment_invoice_and_refund_a_cancel(sf, engine):
    """prefect.yaml's triggers, as ``om up --demo`` applies them (switched on): they follow
    the action deployments' runs, and leave alone what a REST client does itself."""
    with get_client(sync_client=True) as client:
        ids = {name: client.read_deployment_by_name(f"{name}/{name}").id for name in shipped_triggers()}
    created = apply_shipped_automations(ids, enabled=True)
    try:
        assert sorted(created) == ["collect-fulfilment-invoices", "refund-new-credit-memos"]
        assert apply_shipped_automations(ids, enabled=True) == []  # applied twice: nothing doubled
        with get_client(sync_client=True) as client:  # an operator switches one off in the UI ...
            [invoices] = [a for a in client.read_automations() if a.name == "collect-fulfilment-invoices"]
            client.pause_automation(invoices.id)
        assert apply_shipped_automations(ids, enabled=True) == []  # ... and the next om up leaves it off
        with get_client(sync_client=True) as client:
            assert client.read_automation(invoices.id).enabled is False
            client.resume_automation(invoices.id)

        order, shirt, mug, *_ = new_order(sf, captured=40, authorized=59)
        shipped = run_deployment("fulfil-items", {"order_summary_id": order, "fulfill_items_input": {
            "fulfillmentItems": [{"orderItemSummaryId": shirt, "quantity": 3}]}})
        assert shipped.state.is_completed(), shipped.state
        invoice = shipped.state.result()["invoice_id"]
        funds = wait_for_run("ensure-funds-async", lambda p: p.get("ensure_funds_input", {}).get("invoiceId") == invoice)
        assert funds.state.is_completed(), funds.state
        assert D(str(sf.Invoice.get(invoice)["Balance"])) == 0  # 66.00: 40.00 applied, 26.00 captured
        paid_events = events_of(f"om.invoice.{invoice}", "om.invoice.paid", wait_for=1)
        assert len(paid_events) == 1 and related(paid_events[0], "order-summary") == [f"om.order-summary.{order}"]
        captures = [r["prefect.resource.id"] for r in paid_events[0]["related"] if r["prefect.resource.role"] == "payment"]
        # the capture of the authorization (the 40.00 captured at checkout was applied, not captured now)
        [captured] = [e for payment in captures for e in events_of(payment, "om.payment.captured", timeout=5)]
        assert captured["payload"]["invoiceId"] == invoice and captured["payload"]["amount"] == "26.00"

        cancel = sf.restful(ORDERS.format(order) + "actions/submit-cancel", method="POST",
                            json={"changeItems": [{"orderItemSummaryId": mug, "quantity": 1}]})
        credited = run_deployment("create-credit-memo", {"order_summary_id": order, "create_credit_memo_input": {
            "changeOrderIds": [cancel["changeOrderId"]]}})
        memo = credited.state.result()["credit_memo_id"]
        refund = wait_for_run("ensure-refunds-async", lambda p: p.get("ensure_refunds_input", {}).get("creditMemoId") == memo)
        assert refund.state.is_completed(), refund.state
        assert D(str(sf.CreditMemo.get(memo)["Balance"])) == 0

        # A credit memo a REST client makes (and refunds itself) and an invoice it makes
        # start nothing.
        other = sf.restful(ORDERS.format(order) + "actions/submit-cancel", method="POST",
                           json={"changeItems": [{"orderItemSummaryId": mug, "quantity": 1}]})
        rest_memo = sf.restful(ORDERS.format(order) + "actions/create-credit-memo", method="POST",
                               json={"changeOrderIds": [other["changeOrderId"]]})["creditMemoId"]
        assert len(events_of(f"om.credit-memo.{rest_memo}", "om.credit-memo.created", wait_for=1)) == 1
        time.sleep(5)
        assert not [r for r in runs_of("ensure-refunds-async")
                    if r.parameters.get("ensure_refunds_input", {}).get("creditMemoId") == rest_memo]
        assert_ledger_invariants(engine.store_url)
    finally:
        with get_client(sync_client=True) as client:
            for automation in client.read_automations():
                if automation.name in created:
                    client.delete_automation(automation.id)


class Inbox:
    """A webhook receiver on loopback, standing in for the team's chat channel."""

    def __init__(self):
        self.received: list[dict] = []
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                inbox.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                """Quiet: the test reads what arrived, not the server's access log."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def test_a_refused_refund_notifies_the_operations_team_once(sf, engine):
    inbox = Inbox()
    try:
        assert apply_notification_automation(enabled=True, webhook_url=inbox.url) == PROCESS_EXCEPTION_AUTOMATION
        assert apply_notification_automation(enabled=True, webhook_url=inbox.url) is None  # not doubled
        order, _summaries, memo, _ = set_up_order(sf, payments=[50.00], credit_memo=13.13)  # the gateway declines 13.13
        operation = sf.restful(ACTION.format(order), method="POST", json={"creditMemoId": memo})["backgroundOperationId"]
        assert wait_for_operation(sf, operation)["Status"] == "Complete"
        with Session(get_engine(engine.store_url)) as session:
            refund = session.exec(select(Refund).where(Refund.credit_memo_id == memo)).one()
            exception = session.exec(select(ProcessException).where(ProcessException.attached_to_id == refund.id)).one()
        created = events_of(f"om.process-exception.{exception.id}", "om.process-exception.created", wait_for=1)
        assert related(created[0], "refund") == [f"om.refund.{refund.id}"]
        assert related(created[0], "order-summary") == [f"om.order-summary.{order}"]
        deadline = time.monotonic() + 60
        while not inbox.received and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)
        assert len(inbox.received) == 1, inbox.received
        assert exception.id in inbox.received[0]["subject"] and "Refund of 13.13 USD failed" in inbox.received[0]["subject"]
        assert f"Order summary: {order}" in inbox.received[0]["body"]
        assert_ledger_invariants(engine.store_url)
    finally:
        inbox.server.shutdown()
        with get_client(sync_client=True) as client:  # the next test (other backend) makes its own
            for automation in client.read_automations_by_name(PROCESS_EXCEPTION_AUTOMATION):
                client.delete_automation(automation.id)
            for block in client.read_block_documents(include_secrets=False):
                if block.name == NOTIFICATION_BLOCK:
                    client.delete_block_document(block.id)


def test_a_rerun_ensure_refunds_tells_each_event_once(sf, engine):
    """A completed run put back to Scheduled (what a resume does) runs again under the same
    id: it finds its refunds and tells their events again with the same ids, so each is
    stored once."""
    from prefect.states import Scheduled

    order, _summaries, memo, invoices = set_up_order(sf, payments=[60.00], credit_memo=30.00, invoices=[5.00])
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("ensure-refunds-async/ensure-refunds-async")
        run = client.create_flow_run_from_deployment(deployment.id, parameters={
            "order_summary_id": order, "ensure_refunds_input": {"creditMemoId": memo, "invoicesToPay": [{"invoiceId": i} for i in invoices]}})
    first = wait_for_run("ensure-refunds-async", lambda p: p.get("order_summary_id") == order)
    assert first.state.is_completed(), first.state
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Scheduled(), force=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            again = client.read_flow_run(run.id)
            if again.run_count > first.run_count and again.state.is_final():
                break
            time.sleep(0.3)
    assert again.state.is_completed(), again.state
    with Session(get_engine(engine.store_url)) as session:
        [refund] = session.exec(select(Refund).where(Refund.credit_memo_id == memo)).all()
    assert refund.amount == D("25.00") and refund.allocation_step == "CreditMemo"
    time.sleep(2)
    for name in ("om.refund.pending", "om.refund.processed"):
        events = events_of(f"om.refund.{refund.id}", name, wait_for=1)
        assert len(events) == 1, name
        assert related(events[0], "credit-memo") == [f"om.credit-memo.{memo}"]
    assert len(events_of(f"om.invoice.{invoices[0]}", "om.invoice.paid", wait_for=1)) == 1
    assert run.id and again.state.result()["refunded_amount"] == "25.00"
    assert_ledger_invariants(engine.store_url)
