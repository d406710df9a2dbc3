"""Compositions (issue 13) on the real Prefect server and the REST facade, with an
unmodified Salesforce client: checked before anything moves, a Loop, started by an
automation on one of our events, and every way in reporting the same problems."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal as D

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from simple_salesforce.exceptions import SalesforceError
from sqlmodel import Session, select

from blocks import CompositionBlock
from compositions.model import Composition
from db.engine import get_engine
from db.models import ChangeOrder, InteractionType, OperationStep, PaymentGatewayLog, Refund, RefundStatus
from tests.e2e.conftest import count_requested_runs
from tests.e2e.test_ensure_refunds_async import wait_for_operation
from tests.e2e.test_order_lifecycle import ORDERS, RETURNS, new_order
from tests.e2e.test_record_triggered_flows import run_deployment, wait_for_run
from tests.ledger import assert_ledger_invariants, snapshot

pytestmark = pytest.mark.e2e


def save(spec: dict) -> str:
    """Save a composition as its block, as the Blocks page's form does; its name."""
    composition = Composition.model_validate(spec)
    CompositionBlock.of(composition).save(composition.name, overwrite=True)
    return composition.name


def task_run_names(flow_run_id) -> list[str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted(run.name for run in runs)


def ref(path: str) -> dict:
    return {"ref": path}


BROKEN = {
    "inputs": [{"name": "orderSummaryId", "type": "id"}, {"name": "amount", "type": "amount"},
               {"name": "changeOrderId", "type": "id"}],
    "steps": [
        {"id": "memo", "action": "create-credit-memo",
         "inputs": {"orderSummaryId": ref("inputs.amount"), "changeOrderIds": ref("inputs.changeOrderId")}},
        {"id": "refund", "action": "ensure-refunds-async", "inputs": {"creditMemoId": ref("steps.memo.creditMemoIdd")}},
        {"id": "mystery", "action": "refund-everything", "inputs": {}},
        {"id": "invoice", "action": "create-invoice-from-change-orders",
         "inputs": {"orderSummaryId": ref("steps.funds.orderSummaryId"), "changeOrderIds": [ref("steps.nowhere.id")]}},
        {"id": "branch", "action": "ensure-funds-async", "for_each": "steps.memo.totalAmount",
         "when": {"ref": "steps.refund.refunds", "operator": "equals", "value": "x"},
         "inputs": {"orderSummaryId": ref("inputs.orderSummaryId"), "invoiceId": ref("steps.invoice.invoiceId")}},
        {"id": "loop", "action": "fulfil-items", "inputs": {"orderSummaryId": ref("steps.loop.invoiceId"),
                                                            "fulfillmentItems": []}},
        {"id": "funds", "action": "ensure-funds-async",
         "inputs": {"orderSummaryId": ref("inputs.orderSummaryId"), "invoiceId": ref("steps.invoice.invoiceId")}},
    ],
}
EXPECTED = {  # (step, field): a word the message must have
    ("memo", "orderSummaryId"): "an amount, a record id is due",
    ("memo", "changeOrderIds"): "a list of a record id is due",
    ("refund", "creditMemoId"): "no field 'creditMemoIdd'",
    ("refund", "orderSummaryId"): "required input is missing",
    ("mystery", "action"): "unknown action 'refund-everything'",
    ("invoice", "orderSummaryId"): "runs after this one",
    ("invoice", "changeOrderIds[0]"): "there is no step 'nowhere'",
    ("branch", "for_each"): "not a list to loop over",
    ("branch", "when"): "a Decision compares one value",
    ("loop", "orderSummaryId"): "no cycles",
}


def test_every_problem_is_reported_with_its_step_and_field_and_nothing_moves(sf, engine):
    name = save({"name": f"broken-{uuid.uuid4().hex[:6]}", **BROKEN})
    order, *_ = new_order(sf, captured=10, authorized=1)

    # 1. The admin's check before saving: every problem at once.
    answer = sf.restful("actions/custom/flow/check", method="POST", json={"name": name, **BROKEN})
    assert answer["isValid"] is False
    found = {(p["step"], p["field"]): p["message"] for p in answer["problems"]}
    assert set(found) == set(EXPECTED), sorted(found)
    for where, words in EXPECTED.items():
        assert words in found[where], (where, found[where])
    fixed = sf.restful("actions/custom/flow/check", method="POST", json={
        "name": "fine", "inputs": [{"name": "orderSummaryId", "type": "id"}],
        "steps": [{"id": "refund", "action": "ensure-refunds-async",
                   "inputs": {"orderSummaryId": ref("inputs.orderSummaryId"), "excessFundsAmount": 1.5}}]})
    assert fixed == {"isValid": True, "problems": []}

    before, runs_before = snapshot(engine.store_url), count_requested_runs()
    # 2. Started through Salesforce's REST path: refused, no run.
    with pytest.raises(SalesforceError) as refused:
        sf.restful(f"actions/custom/flow/{name.replace('-', '_')}", method="POST", json={"inputs": [{
            "orderSummaryId": order, "amount": 1, "changeOrderId": order}]})
    assert refused.value.status == 400 and refused.value.content[0]["errorCode"] == "INVALID_COMPOSITION"
    assert f"has {len(EXPECTED)} problem(s)" in refused.value.content[0]["message"]
    assert count_requested_runs() == runs_before

    # 3. Started through Prefect's API (the UI's Run button): the run fails before its first step.
    run = run_deployment("run-composition", {"composition": name, "inputs": {
        "orderSummaryId": order, "amount": 1, "changeOrderId": order}})
    assert run.state.is_failed() and "nothing ran" in run.state.message
    assert all(f"{step}.{field}" in run.state.message for step, field in EXPECTED)
    assert task_run_names(run.id) == []
    assert snapshot(engine.store_url) == before

    # 4. A good composition with inputs that do not fit it: refused by REST, failed by a run.
    bad_inputs = {"orderSummaryId": "not-an-id", "changeOrderId": order, "surplus": 1}
    with pytest.raises(SalesforceError) as refused:
        sf.restful("actions/custom/flow/refund_a_return", method="POST", json={"inputs": [bad_inputs]})
    assert refused.value.status == 400 and "inputs.surplus" in refused.value.content[0]["message"]
    run = run_deployment("run-composition", {"composition": "refund-a-return", "inputs": bad_inputs})
    assert run.state.is_failed() and "inputs.orderSummaryId" in run.state.message
    with pytest.raises(SalesforceError) as unknown:
        sf.restful("actions/custom/flow/no_such_composition", method="POST", json={"inputs": [{}]})
    assert unknown.value.status == 404
    assert snapshot(engine.store_url) == before


def test_a_loop_receives_each_line_of_a_return_and_one_credit_memo_refunds_them(sf, engine):
    """create-return-order -> Loop over its lines: Return Return Order Items once per line
    (the same action twice in one run, each with its own change order) -> one credit memo
    of all the change orders -> Decision: more than 0 -> Ensure Refunds."""
    name = save({
        "name": f"loop-{uuid.uuid4().hex[:6]}",
        "inputs": [{"name": "createReturnOrderInput", "type": "CreateReturnOrderInput"}],
        "steps": [
            {"id": "open", "action": "create-return-order", "inputs": {
                "orderSummaryId": ref("inputs.createReturnOrderInput.orderSummaryId"),
                "returnOrderLineItems": ref("inputs.createReturnOrderInput.returnOrderLineItems")}},
            {"id": "receive", "action": "return-return-order-items", "for_each": "steps.open.returnOrderLineItemIds",
             "inputs": {"returnOrderId": ref("steps.open.returnOrderId"),
                        "returnOrderItems": [{"returnOrderLineItemId": ref("item"), "quantityReceived": 1}]}},
            {"id": "memo", "action": "create-credit-memo", "inputs": {
                "orderSummaryId": ref("inputs.createReturnOrderInput.orderSummaryId"),
                "changeOrderIds": ref("steps.receive.changeOrderId")}},
            {"id": "refund", "action": "ensure-refunds-async",
             "when": {"ref": "steps.memo.totalAmount", "operator": "greater than", "value": 0},
             "inputs": {"orderSummaryId": ref("inputs.createReturnOrderInput.orderSummaryId"),
                        "creditMemoId": ref("steps.memo.creditMemoId")}},
        ],
    })
    order, shirt, mug, paid, held, _authorization = new_order(sf, captured=40, authorized=59)
    sf.restful(ORDERS.format(order) + "actions/fulfill-items", method="POST", json={"fulfillmentItems": [
        {"orderItemSummaryId": shirt, "quantity": 1}, {"orderItemSummaryId": mug, "quantity": 1}]})
    answer = sf.restful(f"actions/custom/flow/{name.replace('-', '_')}", method="POST", json={"inputs": [{
        "createReturnOrderInput": {"orderSummaryId": order, "returnOrderLineItems": [
            {"orderItemSummaryId": shirt, "quantityExpected": 1}, {"orderItemSummaryId": mug, "quantityExpected": 1}]}}]})
    operation_id = answer[0]["outputValues"]["backgroundOperationId"]
    assert wait_for_operation(sf, operation_id)["Status"] == "Complete"
    assert task_run_names(uuid.UUID(operation_id)) == [
        "memo · create-credit-memo", "open · create-return-order", "receive[0] · return-return-order-items",
        "receive[1] · return-return-order-items", "refund · ensure-refunds-async"]
    # 22.00 (shirt and tax) + 16.50 (mug and tax) back to the 40.00 card
    assert D(str(sf.OrderPaymentSummary.get(paid)["RefundedAmount"])) == D("38.50")
    with Session(get_engine(engine.store_url)) as session:
        steps = session.exec(select(OperationStep).where(OperationStep.operation_id == operation_id)).all()
        assert sorted(s.step for s in steps) == ["memo", "open", "receive[0]", "receive[1]", "refund"]
        returned = session.exec(select(ChangeOrder).where(ChangeOrder.order_summary_id == order,
                                                          ChangeOrder.type == "Return")).all()
        assert sorted(c.total_amount for c in returned) == [D("15.00"), D("20.00")]  # one per Loop run
        refund = session.exec(select(Refund).where(Refund.order_payment_summary_id == paid)).one()
    # a record a step made names the step's operation, which reads as the run carrying it
    assert refund.background_operation_id in {s.id for s in steps}
    carried = sf.restful(f"sobjects/BackgroundOperation/{refund.background_operation_id}")
    assert (carried["Id"], carried["Status"]) == (operation_id, "Complete")
    with get_client(sync_client=True) as client:
        artifacts = client._client.post("/artifacts/filter", json={
            "artifacts": {"flow_run_id": {"any_": [operation_id]}}}).raise_for_status().json()
    shown = " ".join(a["data"] or "" for a in artifacts if a["type"] == "markdown")
    for key in ("open", "receive[0]", "receive[1]", "memo", "refund"):
        assert f"### Step {key} ·" in shown
    assert "Inputs, as resolved" in shown and '"quantityReceived": 1' in shown
    assert_ledger_invariants(engine.store_url)


def test_an_automation_on_items_returned_starts_a_composition(sf, engine, automation):
    """om.return-order.items-returned starts refund-a-return with the event's fields as
    its inputs: the Return change order is credited and refunded, once."""
    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name("run-composition/run-composition").id
    automation({
        "name": f"refund returns {uuid.uuid4().hex[:6]}", "description": "", "enabled": True,
        "trigger": {"type": "event", "posture": "Reactive", "expect": ["om.return-order.items-returned"],
                    "match": {"prefect.resource.id": "om.return-order.*"}, "match_related": {},
                    "for_each": ["prefect.resource.id"], "after": [], "threshold": 1, "within": 0},
        "actions": [{"type": "run-deployment", "source": "selected", "deployment_id": str(deployment_id),
                     "job_variables": {}, "parameters": {
                         "composition": "refund-a-return",
                         "inputs": {
                             "orderSummaryId": {"__prefect_kind": "jinja", "template": "{{ event.payload.orderSummaryId }}"},
                             "changeOrderId": {"__prefect_kind": "jinja", "template": "{{ event.payload.changeOrderId }}"}}}}],
    })
    order, shirt, _mug, paid, _held, _authorization = new_order(sf, captured=40, authorized=59)
    sf.restful(ORDERS.format(order) + "actions/fulfill-items", method="POST",
               json={"fulfillmentItems": [{"orderItemSummaryId": shirt, "quantity": 1}]})
    return_order = sf.restful(RETURNS, method="POST", json={
        "orderSummaryId": order, "returnOrderLineItems": [{"orderItemSummaryId": shirt, "quantityExpected": 1}]})
    returned = sf.restful(f"{RETURNS}/{return_order['returnOrderId']}/actions/return-items", method="POST", json={
        "returnOrderItems": [{"returnOrderLineItemId": return_order["returnOrderLineItemIds"][0], "quantityReceived": 1}]})

    run = wait_for_run("run-composition", lambda p: p.get("inputs", {}).get("changeOrderId") == returned["changeOrderId"])
    assert run.state.is_completed(), run.state
    assert run.parameters == {"composition": "refund-a-return", "inputs": {
        "orderSummaryId": order, "changeOrderId": returned["changeOrderId"]}}
    assert task_run_names(run.id) == ["memo · create-credit-memo", "refund · ensure-refunds-async"]
    assert D(str(sf.OrderPaymentSummary.get(paid)["RefundedAmount"])) == D("22.00")
    with Session(get_engine(engine.store_url)) as session:
        refunds = session.exec(select(Refund).where(Refund.order_payment_summary_id == paid)).all()
        assert [(r.amount, r.status) for r in refunds] == [(D("22.00"), RefundStatus.PROCESSED)]
        logs = session.exec(select(PaymentGatewayLog).where(PaymentGatewayLog.reference_entity_id == refunds[0].id)).all()
        assert [log.interaction_type for log in logs] == [InteractionType.REFUND]
    time.sleep(3)  # the run's own events start nothing more
    assert len([r for r in _runs_for(returned["changeOrderId"])]) == 1
    assert_ledger_invariants(engine.store_url)


def _runs_for(change_order_id: str) -> list:
    from tests.e2e.test_record_triggered_flows import runs_of

    return [r for r in runs_of("run-composition") if r.parameters.get("inputs", {}).get("changeOrderId") == change_order_id]


def test_a_rerun_runs_what_it_started_with_and_reads_back_what_each_step_returned(sf, engine):
    """A finished run started again (as a retry does) while its composition was edited in
    between: it runs the composition it started with, asks no action again (each step's
    output is read back), and its result is the same."""
    from prefect.states import Scheduled

    steps = [{"id": "memo", "action": "create-credit-memo", "inputs": {
                 "orderSummaryId": ref("inputs.orderSummaryId"), "changeOrderIds": [ref("inputs.changeOrderId")]}},
             {"id": "refund", "action": "ensure-refunds-async",
              "when": {"ref": "steps.memo.totalAmount", "operator": "greater than", "value": 0},
              "inputs": {"orderSummaryId": ref("inputs.orderSummaryId"), "creditMemoId": ref("steps.memo.creditMemoId")}}]
    inputs = [{"name": "orderSummaryId", "type": "id"}, {"name": "changeOrderId", "type": "id"}]
    name = save({"name": f"pinned-{uuid.uuid4().hex[:6]}", "inputs": inputs, "steps": steps})
    order, shirt, _mug, paid, _held, _authorization = new_order(sf, captured=40, authorized=59)
    sf.restful(ORDERS.format(order) + "actions/fulfill-items", method="POST",
               json={"fulfillmentItems": [{"orderItemSummaryId": shirt, "quantity": 1}]})
    change = sf.restful(ORDERS.format(order) + "actions/submit-return", method="POST",
                        json={"changeItems": [{"orderItemSummaryId": shirt, "quantity": 1}]})
    first = run_deployment("run-composition", {"composition": name, "inputs": {
        "orderSummaryId": order, "changeOrderId": change["changeOrderId"]}})
    assert first.state.is_completed(), first.state
    before = task_run_names(first.id)
    assert before == ["memo · create-credit-memo", "refund · ensure-refunds-async"]

    # The operator edits it: now it would only ask for funds, for an invoice that is not there.
    save({"name": name, "inputs": inputs, "steps": [{"id": "funds", "action": "ensure-funds-async", "inputs": {
        "orderSummaryId": ref("inputs.orderSummaryId"), "invoiceId": "3tt000000000000AAA"}}]})
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(first.id, Scheduled(), force=True)
        deadline = time.monotonic() + 90
        while True:
            again = client.read_flow_run(first.id)
            if again.run_count > first.run_count and again.state.is_final():
                break
            assert time.monotonic() < deadline, again.state
            time.sleep(0.5)
    assert again.state.is_completed(), again.state
    assert again.state.result() == first.state.result()
    assert task_run_names(first.id) == before  # no action was asked again
    assert D(str(sf.OrderPaymentSummary.get(paid)["RefundedAmount"])) == D("22.00")
    with Session(get_engine(engine.store_url)) as session:
        assert len(session.exec(select(Refund).where(Refund.order_payment_summary_id == paid)).all()) == 1
    assert_ledger_invariants(engine.store_url)

