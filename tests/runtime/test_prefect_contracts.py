"""What the warm executor relies on in Prefect, pinned against the real server and the
installed version: if an upgrade changes one of these, this file says which."""

from __future__ import annotations

import inspect
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.exceptions import Abort
from prefect.states import Pending, Scheduled
from prefect.utilities.engine import propose_state_sync

from runtime.executor import claims
from runtime.executor.inprocess import (
    CancellableThreads,
    OperationCancelled,
    WarmFlowRunEngine,
    _settings_without_heartbeats,
)

pytestmark = pytest.mark.usefixtures("prefect_api")


@flow(name="contract-noop", persist_result=False)
def noop() -> None:
    """Does nothing."""


@pytest.fixture
def deployment():
    name = f"c-{uuid.uuid4().hex[:8]}"
    return noop.to_deployment(name=name).apply(), name


def new_run(deployment_id):
    with get_client(sync_client=True) as client:
        return client.create_flow_run_from_deployment(deployment_id)


def test_of_two_racing_pending_proposals_exactly_one_wins(deployment):
    """PreventPendingTransitions, under the run's row lock: the claim is exclusive."""
    for _ in range(5):
        run = new_run(deployment[0])

        def propose(_, run_id=run.id):
            with get_client(sync_client=True) as client:
                try:
                    return propose_state_sync(client, Pending(), flow_run_id=run_id).is_pending()
                except Abort:
                    return False

        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(propose, range(4)))
        assert outcomes.count(True) == 1, outcomes


def test_a_full_deployment_turns_the_claim_back_into_awaiting_a_slot():
    """SecureFlowConcurrencySlots: Pending is refused with Scheduled(AwaitingConcurrencySlot)."""
    deployment_id = noop.to_deployment(name=f"c-{uuid.uuid4().hex[:8]}", concurrency_limit=1).apply()
    first, second = new_run(deployment_id), new_run(deployment_id)
    with get_client(sync_client=True) as client:
        assert claims.claim(client, first) is not None
        assert claims.claim(client, second) is None
        state = client.read_flow_run(second.id).state
    assert state.type == StateType.SCHEDULED and state.name == "AwaitingConcurrencySlot"


def test_the_read_poll_writes_nothing_but_the_runner_poll_does(deployment):
    """Why the executor polls with flow_runs/filter: the runner's endpoint stamps
    last_polled (a write) on every call."""
    deployment_id, _name = deployment
    with get_client(sync_client=True) as client:
        before = client.read_deployment(deployment_id).last_polled
        for _ in range(3):
            claims.due_runs(client, work_pool="no-such-pool", deployment_ids=[deployment_id], limit=5)
        assert client.read_deployment(deployment_id).last_polled == before
        client.get_scheduled_flow_runs_for_deployments(deployment_ids=[deployment_id])
        deadline = time.monotonic() + 10  # the server stamps it in a background task
        while client.read_deployment(deployment_id).last_polled == before:
            assert time.monotonic() < deadline, "the runner's poll no longer stamps last_polled"
            time.sleep(0.1)


def test_due_runs_are_scheduled_runs_whose_time_has_come():
    from datetime import UTC, datetime, timedelta

    from prefect.client.schemas.actions import WorkPoolCreate

    pool = f"c-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="om-warm"))
        deployment_id = noop.to_deployment(name=pool).apply(work_pool_name=pool)
        now_run = client.create_flow_run_from_deployment(deployment_id)
        later_run = client.create_flow_run_from_deployment(
            deployment_id, state=Scheduled(scheduled_time=datetime.now(UTC) + timedelta(hours=1)))
        due = claims.due_runs(client, work_pool=pool, deployment_ids=[deployment_id], limit=10)
        assert [r.id for r in due] == [now_run.id]
        assert claims.due_runs(client, work_pool="another-pool", deployment_ids=[deployment_id], limit=10) == []
        assert later_run.id not in [r.id for r in due]


def test_the_engine_hooks_the_executor_overrides_are_still_there():
    from prefect.flow_engine import FlowRunEngine

    start_source = inspect.getsource(FlowRunEngine.start)
    assert "self.setup_flow_run_suspension_request()" in start_source
    assert hasattr(FlowRunEngine, "_get_flow_run_suspension_request")
    assert "observe_flow_run_suspension" in inspect.getsource(FlowRunEngine.setup_flow_run_suspension_request)
    assert WarmFlowRunEngine.setup_flow_run_suspension_request is not FlowRunEngine.setup_flow_run_suspension_request
    assert list(inspect.signature(FlowRunEngine.handle_cancellation).parameters) == ["self", "exc"]
    assert "_send_heartbeats(self)" in inspect.getsource(FlowRunEngine.run_context)


def test_a_registered_suspension_request_is_marked_by_run_id():
    from prefect._flow_run_suspension import (
        FlowRunSuspensionRequest,
        mark_flow_run_suspension_requested,
        register_flow_run_suspension_request,
    )
    from prefect.states import Suspended

    request, run_id = FlowRunSuspensionRequest(), uuid.uuid4()
    with register_flow_run_suspension_request(run_id, request):
        assert mark_flow_run_suspension_requested(run_id, Suspended())
        assert request.is_requested()
    assert not mark_flow_run_suspension_requested(run_id, Suspended())


def test_heartbeats_are_off_under_the_executors_settings():
    from prefect.flow_engine import FlowRunEngine

    assert FlowRunEngine(flow=noop).heartbeat_seconds is not None  # Prefect's default: on
    with _settings_without_heartbeats().model_copy():
        assert FlowRunEngine(flow=noop).heartbeat_seconds is None


def test_an_entered_sync_client_context_is_reused():
    from prefect.context import SyncClientContext

    with SyncClientContext.get_or_create() as outer:
        with SyncClientContext.get_or_create() as inner:
            assert inner.client is outer.client


def test_a_cancellation_reaches_its_thread_and_only_while_the_run_is_there():
    threads = CancellableThreads()
    run_id = uuid.uuid4()
    entered, outcome = threading.Event(), []

    def work():
        threads.enter(run_id)
        entered.set()
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                time.sleep(0.01)
            outcome.append("finished")
        except OperationCancelled:
            outcome.append("cancelled")
        finally:
            threads.leave(run_id)

    thread = threading.Thread(target=work)
    thread.start()
    entered.wait(5)
    assert threads.cancel(run_id)
    thread.join(5)
    assert outcome == ["cancelled"]
    assert not threads.cancel(run_id)  # gone: nothing is delivered to whatever that thread does next
