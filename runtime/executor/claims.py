"""Finding due flow runs with a read, and claiming one with Prefect's own Pending rule.

Stock runners and workers poll with ``get_scheduled_flow_runs`` endpoints, which write
(last-polled stamps, queue status) on every call; polling every 0.1 s that way would be a
write storm. Here the poll is a plain ``flow_runs/filter`` read, and the claim is the
state proposal every Prefect worker makes: SCHEDULED -> PENDING. The server locks the run
row for the proposal and its ``PreventPendingTransitions`` rule aborts a second
PENDING, so when two executors see the same run exactly one of them gets it; its
``SecureFlowConcurrencySlots`` rule turns the proposal back into
``Scheduled(AwaitingConcurrencySlot)`` while the deployment's concurrency limit is full.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterNextScheduledStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import Abort
from prefect.states import Pending
from prefect.utilities.engine import propose_state_sync

ACTIVE = [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING]


def in_pool(work_pool: str) -> WorkPoolFilter:
    return WorkPoolFilter(name=WorkPoolFilterName(any_=[work_pool]))


def due_runs(client: SyncPrefectClient, *, work_pool: str, deployment_ids: list[UUID], limit: int) -> list[FlowRun]:
    """SCHEDULED runs of these deployments, in this work pool, whose start time has come,
    oldest first (a read)."""
    if limit <= 0 or not deployment_ids:
        return []
    return client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
            next_scheduled_start_time=FlowRunFilterNextScheduledStartTime(before_=datetime.now(UTC)),
        ),
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids)),
        work_pool_filter=in_pool(work_pool),
        sort=FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC,
        limit=limit,
    )


def active_in_pool(client: SyncPrefectClient, work_pool: str) -> int:
    """Runs of the work pool that hold a slot (Pending, Running or Cancelling)."""
    return client.count_flow_runs(
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE))),
        work_pool_filter=in_pool(work_pool),
    )


def runs_in_states(client: SyncPrefectClient, ids: list[UUID], states: list[StateType]) -> list[FlowRun]:
    if not ids:
        return []
    return client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=ids),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)),
        ),
        limit=len(ids),
    )


def claim(client: SyncPrefectClient, flow_run: FlowRun, *, reserve=None) -> FlowRun | None:
    """Propose PENDING; the run (with its Pending state) if this process got it, else None
    (another executor has it, it was cancelled, or its deployment has no free slot).

    Only a run read as SCHEDULED is claimed, and with ``reserve`` (called with the run,
    answering whether this executor is the first to take it out of that very Scheduled
    state) a stale read cannot re-run a run that was claimed, run and finished since:
    Prefect accepts PENDING after a final state when results are not persisted.
    """
    if flow_run.state is None or not flow_run.state.is_scheduled():
        return None
    if reserve is not None and not reserve(flow_run):
        return None
    try:
        state = propose_state_sync(client, Pending(), flow_run_id=flow_run.id)
    except Abort:
        return None
    if not state.is_pending():
        return None
    return flow_run.model_copy(update={"state": state})
