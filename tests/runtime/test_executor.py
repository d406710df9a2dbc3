"""The warm executor against the session's real Prefect server: it claims and runs flow
runs of its deployments in this process, several at a time, within the deployment's and
the work pool's concurrency limits; cancels; drains; and finds a dead executor's runs."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, timedelta

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolUpdate
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelling

from runtime.executor import ExecutorSettings, WarmExecutor
from tests.runtime import executor_flows

pytestmark = pytest.mark.usefixtures("prefect_api")


def wait_final(run_id, timeout: float = 60):
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run_id)
            if run.state is not None and run.state.is_final():
                return run
            assert time.monotonic() < deadline, f"run {run_id} still {run.state.type if run.state else None}"
            time.sleep(0.1)


def wait_for(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def state_types(run_id) -> list[StateType]:
    with get_client(sync_client=True) as client:
        return [state.type for state in client.read_flow_run_states(run_id)]


@pytest.fixture
def start_executor(store):
    """Start an executor on a work pool and deployment name of its own; stopped afterwards."""
    started: list[WarmExecutor] = []

    def start(*flows, deployment_options: dict | None = None, name: str | None = None, **settings) -> WarmExecutor:
        name = name or f"t-{uuid.uuid4().hex[:8]}"
        served = [(f, f.to_deployment(name=name, **(deployment_options or {}))) for f in flows]
        settings.setdefault("work_pool", name)
        settings.setdefault("recovery_flow", None)
        executor = WarmExecutor(served, ExecutorSettings(store_url=store, **settings))
        executor.start()
        started.append(executor)
        return executor

    yield start
    for executor in started:
        executor.stop()


def create_run(executor: WarmExecutor, flow_name: str, **parameters):
    deployment_id = next(dep_id for name, dep_id in executor.deployment_ids.items() if name.startswith(f"{flow_name}/"))
    with get_client(sync_client=True) as client:
        return client.create_flow_run_from_deployment(deployment_id, parameters=parameters)


def test_a_created_run_is_claimed_and_run_with_its_task_runs(start_executor):
    executor = start_executor(executor_flows.add_one)
    run = create_run(executor, "exec-add-one", value=41)
    final = wait_final(run.id)
    assert final.state.type == StateType.COMPLETED
    assert state_types(run.id) == [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.COMPLETED]
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    def task_runs():  # recorded from events, a moment after the flow run ends
        with get_client(sync_client=True) as client:
            return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))

    wait_for(lambda: task_runs(), timeout=30)
    assert [t.name.split("-")[0] for t in task_runs()] == ["step"]


def test_an_offered_run_is_taken_without_waiting_for_a_poll(start_executor):
    executor = start_executor(executor_flows.add_one, poll_seconds=3600)  # it will never poll
    time.sleep(0.5)  # past its first poll
    run = create_run(executor, "exec-add-one")
    executor.offer(run)
    assert wait_final(run.id, timeout=30).state.type == StateType.COMPLETED


def test_runs_created_elsewhere_are_found_by_polling(start_executor):
    executor = start_executor(executor_flows.add_one)
    runs = [create_run(executor, "exec-add-one", value=i) for i in range(5)]
    assert {wait_final(r.id).state.type for r in runs} == {StateType.COMPLETED}
    assert executor.started_runs == 5


def test_several_runs_at_once(start_executor):
    executor_flows.barrier = threading.Barrier(3)
    executor = start_executor(executor_flows.meet, limit=3)
    runs = [create_run(executor, "exec-meet") for _ in range(3)]
    assert {wait_final(r.id).state.type for r in runs} == {StateType.COMPLETED}


def test_the_deployment_concurrency_limit_holds(start_executor):
    executor_flows.most_running = 0
    executor = start_executor(executor_flows.overlap, limit=5, deployment_options={"concurrency_limit": 1})
    runs = [create_run(executor, "exec-overlap") for _ in range(4)]
    assert {wait_final(r.id).state.type for r in runs} == {StateType.COMPLETED}
    assert executor_flows.most_running == 1


def test_the_work_pool_concurrency_limit_holds(start_executor):
    executor_flows.most_running = 0
    executor = start_executor(executor_flows.overlap, limit=6)
    with get_client(sync_client=True) as client:
        client.update_work_pool(executor.settings.work_pool, WorkPoolUpdate(concurrency_limit=2))
    time.sleep(5.5)  # the executor rereads the pool's limit every 5 s
    runs = [create_run(executor, "exec-overlap", hold_seconds=2.0) for _ in range(6)]  # long enough to overlap on a loaded machine
    assert {wait_final(r.id).state.type for r in runs} == {StateType.COMPLETED}
    assert executor_flows.most_running == 2


def test_a_cancelled_run_stops_and_is_cancelled(start_executor, tmp_path):
    executor = start_executor(executor_flows.sleep_for, cancel_check_seconds=0.2)
    marker = tmp_path / "started"
    run = create_run(executor, "exec-sleep", seconds=60, marker=str(marker))
    wait_for(marker.exists)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Cancelling(message="operator cancelled"), force=True)
    final = wait_final(run.id, timeout=30)
    assert final.state.type == StateType.CANCELLED
    wait_for(lambda: executor.active_run_ids() == [], timeout=5)
    # the slot is free again
    again = create_run(executor, "exec-sleep", seconds=0)
    assert wait_final(again.id).state.type == StateType.COMPLETED


def test_stop_drains_held_runs_and_claims_nothing_new(start_executor, tmp_path):
    executor = start_executor(executor_flows.sleep_for)
    marker = tmp_path / "started"
    held = create_run(executor, "exec-sleep", seconds=1.5, marker=str(marker))
    wait_for(marker.exists)
    executor.stop()
    assert wait_final(held.id, timeout=5).state.type == StateType.COMPLETED
    later = create_run(executor, "exec-sleep", seconds=0)
    time.sleep(1)
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(later.id).state.type == StateType.SCHEDULED


def test_runs_still_going_after_the_drain_period_are_resumed_by_the_next_executor(start_executor, tmp_path):
    """A stop that outlasts the drain period interrupts the run: it asks to be resumed
    (AwaitingRetry), and the next executor carries the same flow run through."""
    first = start_executor(executor_flows.sleep_once, drain_seconds=0.5)
    marker = tmp_path / "started"
    held = create_run(first, "exec-sleep-once", seconds=30, marker=str(marker))
    wait_for(marker.exists)
    first.stop()
    with get_client(sync_client=True) as client:
        waiting = client.read_flow_run(held.id).state
    assert waiting.name == "AwaitingRetry" and "stopped before it finished" in waiting.message

    start_executor(executor_flows.sleep_once, name=first.settings.work_pool)
    final = wait_final(held.id, timeout=30)
    assert final.state.type == StateType.COMPLETED
    assert marker.read_text() == "resumed"
    assert final.run_count == 2


def test_a_run_held_by_no_live_executor_is_resumed(start_executor, store, tmp_path):
    """An executor that dies stops beating; another one finds its runs and resumes them:
    the same flow run runs again to Completed, and nothing is handed to recovery."""
    from runtime.executor import claims

    executor = start_executor(executor_flows.sleep_once, executor_flows.recovered, recovery_flow="exec-recovered",
                              orphan_grace=timedelta(seconds=3), reap_seconds=0.5, poll_seconds=3600)
    time.sleep(0.5)
    marker = tmp_path / "started"
    marker.write_text("started")  # as if a first attempt had begun
    # a "dead executor's" run: claimed (Pending) by someone who is not beating
    run = create_run(executor, "exec-sleep-once", seconds=30, marker=str(marker))
    with get_client(sync_client=True) as client:
        assert claims.claim(client, run) is not None
    final = wait_final(run.id, timeout=30)
    assert final.state.type == StateType.COMPLETED
    assert marker.read_text() == "resumed"
    assert executor.resumed_orphans == 1 and executor.crashed_orphans == 0
    with get_client(sync_client=True) as client:
        messages = [s.message or "" for s in client.read_flow_run_states(run.id)]
        assert any(m.startswith("Resumed: the executor running it stopped (resume 1)") for m in messages)
        recovery_id = executor.deployment_ids[next(n for n in executor.deployment_ids if n.startswith("exec-recovered/"))]
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        recoveries = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[recovery_id])))
    assert recoveries == []


def test_a_run_whose_executor_keeps_dying_is_crashed_with_its_effects_and_recovery_starts(start_executor, store):
    """Past ``max_orphan_resumes`` a run is Crashed, and its message says what it changed."""
    from runtime.executor import claims

    executor = start_executor(executor_flows.sleep_for, executor_flows.recovered, recovery_flow="exec-recovered",
                              orphan_grace=timedelta(seconds=3), reap_seconds=0.5, poll_seconds=3600,
                              max_orphan_resumes=0)
    time.sleep(0.5)
    run = create_run(executor, "exec-sleep", seconds=0)
    with get_client(sync_client=True) as client:
        assert claims.claim(client, run) is not None
    final = wait_final(run.id, timeout=30)
    assert final.state.type == StateType.CRASHED
    assert "its executor stopped while running it, 1 time." in final.state.message and "It changed nothing." in final.state.message
    assert executor.crashed_orphans == 1
    with get_client(sync_client=True) as client:
        recovery_id = executor.deployment_ids[next(n for n in executor.deployment_ids if n.startswith("exec-recovered/"))]
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        recoveries = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[recovery_id])))
    # the resolver looks only at what has waited the grace period, not at refunds just made
    assert [r.parameters for r in recoveries] == [{"older_than_seconds": 3}]


def test_a_stale_read_never_claims_a_run_again(start_executor, store):
    """Prefect accepts PENDING after a final state (no persisted result): only the claim
    record keyed by the Scheduled state the run was read in stops a stale poller."""
    from runtime.executor import claims, liveness

    executor = start_executor(executor_flows.add_one)
    stale = create_run(executor, "exec-add-one")  # read while Scheduled
    assert wait_final(stale.id).state.type == StateType.COMPLETED
    with get_client(sync_client=True) as client:
        again = claims.claim(client, stale, reserve=lambda run: liveness.reserve_claim(
            store_url=store, executor_id="a-late-executor", flow_run=run))
        assert again is None
        assert client.read_flow_run(stale.id).state.type == StateType.COMPLETED
    assert state_types(stale.id).count(StateType.RUNNING) == 1


def test_a_paused_work_pool_is_not_served(start_executor):
    from prefect.client.schemas.actions import WorkPoolUpdate

    executor = start_executor(executor_flows.add_one)
    with get_client(sync_client=True) as client:
        client.update_work_pool(executor.settings.work_pool, WorkPoolUpdate(is_paused=True))
        wait_for(lambda: executor._paused, timeout=10)
        run = create_run(executor, "exec-add-one")
        executor.offer(run)
        time.sleep(1)
        assert client.read_flow_run(run.id).state.type == StateType.SCHEDULED
        client.update_work_pool(executor.settings.work_pool, WorkPoolUpdate(is_paused=False))
    assert wait_final(run.id).state.type == StateType.COMPLETED


def test_heartbeats_go_on_while_draining(start_executor, store, tmp_path):
    from db.engine import session_scope
    from db.models import ExecutorHeartbeat

    executor = start_executor(executor_flows.sleep_for)
    marker = tmp_path / "started"
    held = create_run(executor, "exec-sleep", seconds=3, marker=str(marker))
    wait_for(marker.exists)
    stopping = threading.Thread(target=executor.stop)
    stopping.start()

    def beat_at():
        with session_scope(store) as session:
            row = session.get(ExecutorHeartbeat, executor.settings.executor_id)
            return row.beat_at if row else None

    first = beat_at()
    wait_for(lambda: beat_at() != first, timeout=5)  # still beating, and listing its run
    stopping.join(30)
    assert wait_final(held.id).state.type == StateType.COMPLETED
    assert beat_at() is None  # a clean stop forgets the executor


def test_a_finished_run_is_never_marked_crashed(start_executor):
    executor = start_executor(executor_flows.add_one)
    run = create_run(executor, "exec-add-one")
    assert wait_final(run.id).state.type == StateType.COMPLETED
    with get_client(sync_client=True) as client:
        executor._crash(client, run.id, "late reaper")
        assert client.read_flow_run(run.id).state.type == StateType.COMPLETED


def test_a_payment_refund_recorded_without_a_send_run_is_sent_by_the_executor(start_executor, store):
    """The facade committed a payment refund, then lost Prefect before it could start the
    send run: the executor starts that run (keyed like the facade's, so only one can exist),
    the refund is sent once and succeeds, and it carries the run as its operation."""
    from datetime import datetime

    from sqlmodel import select

    from actions.payment_refunds import RefundPaymentInput, reserve_payment_refund, send_key
    from blocks import SandboxGateway
    from db.engine import session_scope
    from db.models import Refund, RefundStatus
    from flows.refund_payment import send_recorded_payment_refund
    from gateways.sandbox_ledger import SandboxGatewayRefund
    from tests.factories import make_order
    from tests.ledger import assert_ledger_invariants

    block = f"unsent-{uuid.uuid4().hex[:6]}"
    SandboxGateway(honour_idempotency_keys=False).save(block, overwrite=True)
    with session_scope(store) as session:
        order = make_order(session, payments=["30.00"], gateway_block=block)
        refund = reserve_payment_refund(session=session, request=RefundPaymentInput(
            charge_id=order.payments[order.summaries[0]][0], amount="12.00"))
        refund.created_date = datetime(2000, 1, 1, tzinfo=UTC)  # long past the facade's own start
        refund_id = refund.id
    start_executor(send_recorded_payment_refund, orphan_grace=timedelta(seconds=3), reap_seconds=0.5)

    def settled():
        with session_scope(store) as session:
            return session.get(Refund, refund_id)

    wait_for(lambda: settled().status != RefundStatus.PENDING, timeout=60)
    sent = settled()
    assert sent.status == RefundStatus.PROCESSED and sent.background_operation_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(sent.background_operation_id))
    # started by this executor or by any other serving send-payment-refund on the store (the session runs several)
    assert run.idempotency_key == send_key(refund_id)
    with get_client(sync_client=True) as client:
        assert client.read_flow(run.flow_id).name == "send-payment-refund"
    with session_scope(store) as session:
        booked = session.exec(select(SandboxGatewayRefund).where(
            SandboxGatewayRefund.idempotency_key == sent.idempotency_key)).all()
    assert len(booked) == 1
    assert_ledger_invariants(store)


def test_an_executor_cut_off_from_the_store_stops_sending_before_another_may_resume_its_runs(start_executor, store):
    """An executor whose heartbeats stop landing (alive, but cut off from the store) looks
    dead to the others after the grace period. It sends nothing to a gateway after half
    that period: its run asks to be resumed instead, a healthy executor carries it through,
    and a gateway that ignores idempotency keys books the refund exactly once."""
    from decimal import Decimal

    from sqlmodel import select

    from blocks import SandboxGateway
    from db.engine import session_scope
    from db.models import Refund, RefundStatus
    from flows.ensure_refunds_async import ensure_refunds_async
    from gateways.sandbox_ledger import SandboxGatewayRefund
    from tests.factories import make_order
    from tests.ledger import assert_ledger_invariants

    block = f"fence-{uuid.uuid4().hex[:6]}"
    SandboxGateway(honour_idempotency_keys=False).save(block, overwrite=True)
    with session_scope(store) as session:
        order = make_order(session, payments=["50.00"], credit_memo="20.00", gateway_block=block)
    name = f"t-{uuid.uuid4().hex[:8]}"
    grace = timedelta(seconds=4)
    # its one heartbeat is the one at start: from then on, as if the store were out of its reach
    cut_off = start_executor(ensure_refunds_async, name=name, heartbeat_seconds=3600, orphan_grace=grace,
                             drain_seconds=1)
    time.sleep(grace.total_seconds() / 2 + 0.5)  # past half the grace period since that beat
    run = create_run(cut_off, "ensure-refunds-async", order_summary_id=order.order_summary_id,
                     ensure_refunds_input={"creditMemoId": order.credit_memo_id})

    def messages() -> list[str]:
        with get_client(sync_client=True) as client:
            return [s.message or "" for s in client.read_flow_run_states(run.id)]

    wait_for(lambda: any("sending suspended" in m for m in messages()), timeout=60)
    with session_scope(store) as session:
        [reserved] = session.exec(select(Refund).where(Refund.credit_memo_id == order.credit_memo_id)).all()
        assert reserved.status == RefundStatus.PENDING  # reserved, never sent
        assert session.exec(select(SandboxGatewayRefund).where(
            SandboxGatewayRefund.idempotency_key == reserved.idempotency_key)).all() == []

    healthy = start_executor(ensure_refunds_async, name=name, orphan_grace=grace, reap_seconds=0.5)
    final = wait_final(run.id, timeout=90)
    assert final.state.type == StateType.COMPLETED, final.state
    assert healthy.started_runs >= 1
    with session_scope(store) as session:
        [refund] = session.exec(select(Refund).where(Refund.credit_memo_id == order.credit_memo_id)).all()
        booked = session.exec(select(SandboxGatewayRefund).where(
            SandboxGatewayRefund.idempotency_key == refund.idempotency_key)).all()
    assert (refund.id, refund.status, refund.amount) == (reserved.id, RefundStatus.PROCESSED, Decimal("20.00"))
    assert len(booked) == 1
    assert_ledger_invariants(store)


def test_a_run_whose_concurrency_slot_the_server_lost_before_it_started_is_run_again(start_executor):
    """What a restarted Prefect server does to a claimed run (its leases live in memory):
    the run's lease is gone and another run holds the deployment's only slot, so the server
    cancels the run on its way to Running. No code of it ran: the executor schedules it
    again, and once the slot is free it runs to Completed."""
    from runtime.executor import claims

    executor = start_executor(executor_flows.add_one, poll_seconds=3600, deployment_options={"concurrency_limit": 1})
    first, second = create_run(executor, "exec-add-one", value=1), create_run(executor, "exec-add-one", value=2)
    mine = executor._reserve
    with get_client(sync_client=True) as client:
        claimed = claims.claim(client, client.read_flow_run(first.id), reserve=mine)
        client.release_concurrency_slots_with_lease(claimed.state.state_details.deployment_concurrency_lease_id)
        holder = claims.claim(client, client.read_flow_run(second.id), reserve=mine)  # takes the only slot
        assert holder is not None
    executor._submit(claimed)  # as the executor would right after its claim
    # the holder, claimed here and run by no executor, is resumed as an orphan and frees the slot
    # (Cancelled is final for a moment, until the executor schedules it again)
    wait_for(lambda: state_types(first.id)[-1] == StateType.COMPLETED, timeout=90)
    assert wait_final(second.id, timeout=90).state.type == StateType.COMPLETED
    history = state_types(first.id)
    cancelled = history.index(StateType.CANCELLED)
    assert history[cancelled + 1] == StateType.SCHEDULED and history[-1] == StateType.COMPLETED
    assert history.count(StateType.RUNNING) == 1  # it never ran before it was cancelled


def test_a_flow_that_persists_its_result_takes_the_default_storage_read_once(tmp_path):
    from pathlib import Path

    from prefect import flow
    from prefect.settings import get_current_settings

    from runtime.executor.inprocess import server_default_result_storage, with_default_result_storage

    @flow(persist_result=True)
    def persisting() -> int:
        return 1

    @flow
    def unspecified() -> int:
        return 1

    with get_client(sync_client=True) as client:
        storage = server_default_result_storage(client)  # the session's server has no default block
    assert storage == Path(get_current_settings().results.local_storage_path)
    taken = with_default_result_storage(persisting, storage)
    assert taken.result_storage == storage and taken.persist_result is True
    assert persisting.result_storage is None  # the original is left as it was
    assert with_default_result_storage(unspecified, storage) is unspecified  # storage would switch persistence on
    named = persisting.with_options(result_storage=tmp_path / "own")
    assert with_default_result_storage(named, storage) is named
    assert with_default_result_storage(persisting, None) is persisting  # not read: each run reads it


def test_a_server_that_does_not_answer_leaves_the_lookup_to_each_run():
    from prefect.client.orchestration import get_client as client_for
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from runtime.executor.inprocess import server_default_result_storage
    from runtime.processes import free_port

    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        with client_for(sync_client=True, httpx_settings={"timeout": 2}) as client:
            assert server_default_result_storage(client) is None
