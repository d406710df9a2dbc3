"""A person builds a composition in the Prefect UI and runs it (issue 13), in Debian's
chromium driven by Playwright: the Blocks page's form makes it (a return's credit memo ->
Decision: total > 0 -> Ensure Refunds), the run-composition form starts it, and the run
completes with one task run per step and the refund in the gateway log.

The block form is the V2 UI's (``/v2``): its form shows a list of objects as items with
fields, where the V1 UI's block form shows a JSON editor. Screenshots of each stage are
kept in the test's directory (printed with -s)."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from decimal import Decimal as D
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterId
from sqlmodel import Session, select

from compositions.check import check
from compositions.saved import load
from db.engine import get_engine
from db.models import InteractionStatus, InteractionType, PaymentGatewayLog, Refund, RefundStatus
from tests.e2e.test_order_lifecycle import ORDERS, new_order
from tests.ledger import assert_ledger_invariants

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed here (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def test_a_person_builds_a_composition_in_the_ui_and_runs_it(sf, engine, browser, prefect_api, tmp_path):
    ui = prefect_api.removesuffix("/api")
    name = f"ui-refund-{uuid.uuid4().hex[:6]}"
    order, shirt, _mug, paid, _held, _authorization = new_order(sf, captured=40, authorized=59)
    sf.restful(ORDERS.format(order) + "actions/fulfill-items", method="POST",
               json={"fulfillmentItems": [{"orderItemSummaryId": shirt, "quantity": 1}]})
    change = sf.restful(ORDERS.format(order) + "actions/submit-return", method="POST",
                        json={"changeItems": [{"orderItemSummaryId": shirt, "quantity": 1, "reason": "too small"}]})
    page = browser.new_page(viewport={"width": 1400, "height": 2600})
    shots = []

    def shot(label: str) -> None:
        path = tmp_path / f"{len(shots)}-{label}.png"
        page.screenshot(path=path, full_page=True)
        shots.append(path)

    # 1. The Blocks page: Add a block, OM Composition, its form.
    page.goto(f"{ui}/v2/blocks/catalog/om-composition/create")
    page.locator("input[name=blockName]").fill(name)
    page.get_by_label("Description (Optional)").first.fill("Credit a return and refund the credit")
    add_input, add_step = (lambda: page.get_by_role("button", name="Add item").nth(0),
                           lambda: page.get_by_role("button", name="Add item").nth(1))
    add_input().click()
    add_input().click()
    for index, input_name in enumerate(("orderSummaryId", "changeOrderId")):
        page.get_by_label("Name", exact=True).nth(index + 1).fill(input_name)  # nth(0) is the block's name
        page.get_by_role("button", name="Select Type").nth(index).click()
        page.get_by_role("option", name="id", exact=True).click()
    add_step().click()
    add_step().click()
    editors = page.locator("[contenteditable=true][data-language=json]")
    steps = (("memo", "create-credit-memo", {"orderSummaryId": {"ref": "inputs.orderSummaryId"},
                                             "changeOrderIds": [{"ref": "inputs.changeOrderId"}]}),
             ("refund", "ensure-refunds-async", {"orderSummaryId": {"ref": "inputs.orderSummaryId"},
                                                 "creditMemoId": {"ref": "steps.memo.creditMemoId"}}))
    for index, (step_id, action, inputs) in enumerate(steps):
        page.get_by_label("Id", exact=True).nth(index).fill(step_id)
        page.get_by_role("button", name="Select Action").nth(index).click()
        page.get_by_role("option", name=action, exact=True).click()
        editors.nth(index).click()
        page.keyboard.insert_text(json.dumps(inputs))  # typed keys would get brackets closed for them
    page.get_by_role("tab", name="Decision").nth(1).click()  # the refund step's Decision
    page.get_by_label("Compare").fill("steps.memo.totalAmount")
    page.get_by_role("button", name="Select Operator").click()
    page.get_by_role("option", name="greater than", exact=True).click()
    page.get_by_role("tab", name="float").click()
    page.locator("input[type=number]").last.fill("0")
    shot("block-form")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/blocks/block/**")
    shot("block-saved")

    saved = load(name)
    assert [(s.id, s.action) for s in saved.steps] == [("memo", "create-credit-memo"), ("refund", "ensure-refunds-async")]
    assert (saved.steps[1].when.ref, saved.steps[1].when.operator, saved.steps[1].when.value) == (
        "steps.memo.totalAmount", "greater than", D(0))
    assert [(i.name, i.type) for i in saved.inputs] == [("orderSummaryId", "id"), ("changeOrderId", "id")]
    assert check(saved) == []

    # 2. The run-composition deployment's Run form.
    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name("run-composition/run-composition").id
    page.goto(f"{ui}/v2/deployments/deployment/{deployment_id}/run")
    page.get_by_label("composition", exact=True).fill(name)
    inputs_editor = page.locator("[contenteditable=true][data-language=json]").first
    inputs_editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(json.dumps({"orderSummaryId": order, "changeOrderId": change["changeOrderId"]}))
    shot("run-form")
    page.get_by_role("button", name="Submit").click()

    run = _finished_run(deployment_id, name)
    page.goto(f"{ui}/v2/runs/flow-run/{run.id}")
    page.wait_for_timeout(2000)
    shot("run-page")
    print("screenshots:", *shots, sep="\n  ")
    assert run.state.is_completed(), run.state
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
    assert sorted(t.name for t in task_runs) == ["memo · create-credit-memo", "refund · ensure-refunds-async"]
    assert all(t.state.is_completed() for t in task_runs)
    with Session(get_engine(engine.store_url)) as session:
        [refund] = session.exec(select(Refund).where(Refund.order_payment_summary_id == paid)).all()
        logs = session.exec(select(PaymentGatewayLog).where(PaymentGatewayLog.reference_entity_id == refund.id)).all()
    assert (refund.amount, refund.status) == (D("22.00"), RefundStatus.PROCESSED)
    assert [(log.interaction_type, log.interaction_status) for log in logs] == [
        (InteractionType.REFUND, InteractionStatus.SUCCESS)]
    assert_ledger_invariants(engine.store_url)


def _finished_run(deployment_id, composition: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = [r for r in client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deployment_id]))) if r.parameters.get("composition") == composition]
            if runs and runs[0].state is not None and runs[0].state.is_final():
                return runs[0]
            time.sleep(0.5)
    raise AssertionError(f"no finished run of {composition} within {timeout} s")
