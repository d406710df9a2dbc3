"""Scale-out: two warm executors in their own processes, one Prefect server, one store
(PostgreSQL). Every operation runs once and moves money once, with a gateway that does not
deduplicate by idempotency key; an executor killed mid-operation has its run resumed by
the other, which settles the refund it left reserved, once."""

from __future__ import annotations

import re
import signal
import sys
import time
import uuid
from decimal import Decimal

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType
from sqlmodel import select

from blocks import SandboxGateway
from db.engine import session_scope
from db.models import Refund, RefundStatus
from gateways.sandbox_ledger import SandboxGatewayRefund
from runtime.prefect_server import prefect_env
from runtime.processes import ManagedProcess
from tests.factories import make_order
from tests.ledger import assert_ledger_invariants

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def pg_store(store):
    if not store.startswith("postgresql"):
        pytest.skip("executors in several processes share a PostgreSQL store (SQLite is for one process)")
    return store


@pytest.fixture
def fleet(pg_store, prefect_api, tmp_path):
    """Start executors on a work pool and deployment name of this test's own."""
    name = f"so-{uuid.uuid4().hex[:8]}"
    started: list[ManagedProcess] = []

    def start(label: str, *extra: str) -> ManagedProcess:
        env = prefect_env(prefect_api) | {"OM_DATABASE_URL": pg_store}
        process = ManagedProcess.start(
            [sys.executable, "-m", "runtime.executor", "--work-pool", name, "--deployment-name", name,
             "--limit", "4", "--orphan-grace-seconds", "4", *extra],
            env=env, log_path=tmp_path / f"{label}.log", name=label)
        started.append(process)
        return process

    def deployment_id(flow_name: str):
        with get_client(sync_client=True) as client:
            return client.read_deployment_by_name(f"{flow_name}/{name}").id

    start.deployment_id = deployment_id
    start.name = name
    yield start
    for process in started:
        process.stop()


def wait_until(predicate, timeout: float, what: str, processes=()) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for process in processes:
            assert process.alive(), f"{process.name} died:\n{process.tail()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def serving(process: ManagedProcess) -> bool:
    """It has applied its deployments and started its loops (other executors of the
    session, on other work pools, may share the store: heartbeat rows do not tell)."""
    return "warm executor" in process.log_path.read_text(errors="replace")


def test_two_executors_run_each_operation_once_and_refund_once(fleet, pg_store):
    gateway = f"forgetful-{uuid.uuid4().hex[:6]}"
    SandboxGateway(honour_idempotency_keys=False).save(gateway, overwrite=True)  # repeats would refund again
    first, second = fleet("executor-1"), fleet("executor-2")
    wait_until(lambda: serving(first) and serving(second), 90, "two executors", [first, second])
    with session_scope(pg_store) as session:
        orders = [make_order(session, payments=["50.00"], credit_memo="20.00", gateway_block=gateway) for _ in range(24)]
    deployment_id = fleet.deployment_id("ensure-refunds-async")
    with get_client(sync_client=True) as client:
        runs = [client.create_flow_run_from_deployment(deployment_id, parameters={
            "order_summary_id": o.order_summary_id, "ensure_refunds_input": {"creditMemoId": o.credit_memo_id}})
            for o in orders]

        def all_final():
            found = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[r.id for r in runs])))
            return all(r.state.is_final() for r in found)

        wait_until(all_final, 180, "the operations", [first, second])
        for run in runs:
            history = [s.type for s in client.read_flow_run_states(run.id)]
            assert history.count(StateType.RUNNING) == 1, history  # executed once
            assert history[-1] == StateType.COMPLETED, history
    with session_scope(pg_store) as session:
        refunds = session.exec(select(Refund).where(Refund.credit_memo_id.in_([o.credit_memo_id for o in orders]))).all()
        booked = session.exec(select(SandboxGatewayRefund).where(
            SandboxGatewayRefund.idempotency_key.in_([r.idempotency_key for r in refunds]))).all()
    assert len(refunds) == 24 and {r.status for r in refunds} == {RefundStatus.PROCESSED}
    assert len(booked) == 24 and sum(b.amount for b in booked) == Decimal("480.00")  # once each
    for process in (first, second):
        process.stop()  # SIGTERM: a drained stop logs how many runs it ran
    ran = [int(re.search(r"stopped after (\d+) runs", p.log_path.read_text()).group(1)) for p in (first, second)]
    assert sum(ran) == 24 and min(ran) > 0, ran  # both took a share, none twice
    assert_ledger_invariants(pg_store)


def test_a_killed_executors_operation_is_resumed_by_another_and_refunds_once(fleet, pg_store):
    """The executor dies while its run waits for the gateway: the other executor finds the
    run held by no one, resumes the same flow run, asks the gateway about the refund it
    left Pending (nothing was booked), sends it once, and the operation ends Complete."""
    slow = f"slow-{uuid.uuid4().hex[:6]}"
    SandboxGateway(latency_seconds=60, honour_idempotency_keys=False).save(slow, overwrite=True)
    doomed = fleet("doomed", "--recovery-flow", "")
    wait_until(lambda: serving(doomed), 90, "the first executor", [doomed])
    with session_scope(pg_store) as session:
        order = make_order(session, payments=["50.00"], credit_memo="20.00", gateway_block=slow)
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(fleet.deployment_id("ensure-refunds-async"), parameters={
            "order_summary_id": order.order_summary_id, "ensure_refunds_input": {"creditMemoId": order.credit_memo_id}})

    def reserved():
        with session_scope(pg_store) as session:
            return session.exec(select(Refund).where(Refund.credit_memo_id == order.credit_memo_id)).all()

    wait_until(lambda: reserved() != [], 60, "the refund to be reserved", [doomed])
    time.sleep(0.5)  # inside the gateway's 60 s
    doomed._signal_group(signal.SIGKILL)  # no drain, no goodbye: as if the machine died
    doomed.popen.wait(10)
    [pending] = reserved()
    assert pending.status == RefundStatus.PENDING
    SandboxGateway(latency_seconds=0, honour_idempotency_keys=False).save(slow, overwrite=True)

    survivor = fleet("survivor")
    with get_client(sync_client=True) as client:
        wait_until(lambda: client.read_flow_run(run.id).state.is_final(), 120,
                   "the dead executor's run to be resumed and finish", [survivor])
        final = client.read_flow_run(run.id)
        messages = [s.message or "" for s in client.read_flow_run_states(run.id)]
        recoveries = client.read_flow_runs(deployment_filter=DeploymentFilter(
            id=DeploymentFilterId(any_=[fleet.deployment_id("resolve-gateway-outcomes")])))
    assert final.state.type == StateType.COMPLETED, final.state
    assert final.run_count == 2  # the same flow run, run again
    assert any(m.startswith("Resumed: the executor running it stopped") for m in messages), messages
    [refund] = reserved()
    assert (refund.id, refund.status, refund.amount) == (pending.id, RefundStatus.PROCESSED, Decimal("20.00"))
    with session_scope(pg_store) as session:
        booked = session.exec(select(SandboxGatewayRefund).where(
            SandboxGatewayRefund.idempotency_key == refund.idempotency_key)).all()
    assert len(booked) == 1  # the dead run never reached the gateway; the resumed run asked, then sent once
    assert recoveries == []  # nothing was left for the resolver
    assert_ledger_invariants(pg_store)


def test_a_composition_killed_after_its_second_step_resumes_without_doing_a_step_twice(fleet, pg_store):
    """A composition that runs the same action in two steps (two cancels), then credits and
    refunds: its executor dies while the refund waits for the gateway. The resumed run gets
    each committed step's records back (each step has its own operation id) and sends the
    refund once: two change orders, one credit memo, one refund, one gateway booking."""
    from blocks import CompositionBlock
    from compositions.model import Composition
    from db.models import ChangeOrder, CreditMemo, OperationStep, OrderItemSummary
    from tests.factories import make_order_with_items

    slow = f"slow-{uuid.uuid4().hex[:6]}"
    SandboxGateway(latency_seconds=60, honour_idempotency_keys=False).save(slow, overwrite=True)
    name = f"cancel-two-{uuid.uuid4().hex[:6]}"
    ref = lambda path: {"ref": path}  # noqa: E731
    CompositionBlock.of(Composition.model_validate({
        "name": name, "inputs": [{"name": "orderSummaryId", "type": "id"}, {"name": "first", "type": "id"},
                                 {"name": "second", "type": "id"}],
        "steps": [
            {"id": "cancel-first", "action": "submit-cancel", "inputs": {
                "orderSummaryId": ref("inputs.orderSummaryId"),
                "changeItems": [{"orderItemSummaryId": ref("inputs.first"), "quantity": 1}]}},
            {"id": "cancel-second", "action": "submit-cancel", "inputs": {
                "orderSummaryId": ref("inputs.orderSummaryId"),
                "changeItems": [{"orderItemSummaryId": ref("inputs.second"), "quantity": 1}]}},
            {"id": "memo", "action": "create-credit-memo", "inputs": {
                "orderSummaryId": ref("inputs.orderSummaryId"),
                "changeOrderIds": [ref("steps.cancel-first.changeOrderId"), ref("steps.cancel-second.changeOrderId")]}},
            {"id": "refund", "action": "ensure-refunds-async", "inputs": {
                "orderSummaryId": ref("inputs.orderSummaryId"), "creditMemoId": ref("steps.memo.creditMemoId")}},
        ]})).save(name, overwrite=True)
    doomed = fleet("doomed", "--recovery-flow", "")
    wait_until(lambda: serving(doomed), 90, "the first executor", [doomed])
    order, (mug, plate) = make_order_with_items(pg_store, payments=("50.00",), gateway_block=slow,
                                                items=(("mug", "10.00", "2", "2.00"), ("plate", "5.00", "2", "0")))
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(fleet.deployment_id("run-composition"), parameters={
            "composition": name, "inputs": {"orderSummaryId": order.order_summary_id, "first": mug, "second": plate}})

    def refunds():
        with session_scope(pg_store) as session:
            return session.exec(select(Refund).where(Refund.order_payment_summary_id == order.summaries[0])).all()

    wait_until(lambda: refunds() != [], 90, "the refund step to reserve its refund", [doomed])
    time.sleep(0.5)  # inside the gateway's 60 s
    doomed._signal_group(signal.SIGKILL)
    doomed.popen.wait(10)
    [pending] = refunds()
    assert pending.status == RefundStatus.PENDING
    SandboxGateway(latency_seconds=0, honour_idempotency_keys=False).save(slow, overwrite=True)

    survivor = fleet("survivor")
    with get_client(sync_client=True) as client:
        wait_until(lambda: client.read_flow_run(run.id).state.is_final(), 120, "the run to resume and finish", [survivor])
        final = client.read_flow_run(run.id)
    assert final.state.type == StateType.COMPLETED, final.state
    assert final.run_count == 2  # the same flow run, run again
    [refund] = refunds()
    assert (refund.id, refund.status, refund.amount) == (pending.id, RefundStatus.PROCESSED, Decimal("16.00"))
    with session_scope(pg_store) as session:
        cancels = session.exec(select(ChangeOrder).where(ChangeOrder.order_summary_id == order.order_summary_id)).all()
        memos = session.exec(select(CreditMemo).where(CreditMemo.order_summary_id == order.order_summary_id)).all()
        steps = session.exec(select(OperationStep).where(OperationStep.operation_id == str(run.id))).all()
        booked = session.exec(select(SandboxGatewayRefund).where(
            SandboxGatewayRefund.idempotency_key == refund.idempotency_key)).all()
        canceled = [session.get(OrderItemSummary, item).quantity_canceled for item in (mug, plate)]
    assert len(cancels) == 2 and len({c.background_operation_id for c in cancels}) == 2  # a step each, once each
    assert len(memos) == 1 and memos[0].total_amount == Decimal("16.00")  # a mug 10.00 + 1.00 tax, a plate 5.00
    assert sorted(s.step for s in steps) == ["cancel-first", "cancel-second", "memo", "refund"]
    assert canceled == [Decimal(1), Decimal(1)]
    assert len(booked) == 1
    assert_ledger_invariants(pg_store)

