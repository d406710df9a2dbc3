"""The executor's liveness signal, in the store: one row per executor, rewritten every
second with the flow runs it holds.

A flow run of the executors' deployments that is Pending, Running or Cancelling, whose
state is older than the grace period and that no live executor lists, belongs to an
executor that died (killed, OOM, machine lost): :func:`orphaned_runs` finds it, and the
executor that finds it marks it Crashed so the resolver can recover its money. The grace
period covers a run claimed between two heartbeats of a live executor.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select

from db.engine import session_scope
from db.models import ExecutorClaim, ExecutorHeartbeat
from db.types import utcnow
from runtime.executor.claims import ACTIVE, in_pool


def beat(*, store_url: str | None, executor_id: str, work_pool: str, run_ids: list[UUID]) -> None:
    # A connection of its own: a beat never waits behind the runs for the shared pool (a late
    # beat makes the executor stop sending to gateways, see WarmExecutor._may_send).
    with session_scope(store_url, pool="liveness") as session:
        row = session.get(ExecutorHeartbeat, executor_id)
        if row is None:
            row = ExecutorHeartbeat(executor_id=executor_id, work_pool=work_pool)
        row.beat_at = utcnow()
        row.run_ids = json.dumps(sorted(str(run_id) for run_id in run_ids))
        session.add(row)


def reserve_claim(*, store_url: str | None, executor_id: str, flow_run: FlowRun) -> bool:
    """Whether this executor is the first to take the run out of the Scheduled state it was
    read in (see :class:`db.models.ExecutorClaim`)."""
    try:
        with session_scope(store_url) as session:
            session.add(ExecutorClaim(flow_run_id=str(flow_run.id), scheduled_state_id=str(flow_run.state.id),
                                      executor_id=executor_id))
    except IntegrityError:
        return False
    return True


def forget(*, store_url: str | None, executor_id: str) -> None:
    """A clean stop: this executor holds nothing any more."""
    with session_scope(store_url) as session:
        session.exec(delete(ExecutorHeartbeat).where(col(ExecutorHeartbeat.executor_id) == executor_id))


def held_by_live_executors(*, store_url: str | None, stale_after: timedelta) -> set[UUID]:
    """Run ids listed by executors that beat within ``stale_after``; rows older than a day
    (executors long gone) are deleted on the way."""
    now = utcnow()
    with session_scope(store_url) as session:
        session.exec(delete(ExecutorHeartbeat).where(col(ExecutorHeartbeat.beat_at) < now - timedelta(days=1)))
        session.exec(delete(ExecutorClaim).where(col(ExecutorClaim.claimed_at) < now - timedelta(days=7)))
        rows = session.exec(select(ExecutorHeartbeat).where(col(ExecutorHeartbeat.beat_at) >= now - stale_after)).all()
    return {UUID(run_id) for row in rows for run_id in json.loads(row.run_ids)}


def orphaned_runs(
    client: SyncPrefectClient, *, store_url: str | None, work_pool: str, deployment_ids: list[UUID], grace: timedelta,
) -> list[FlowRun]:
    """Active runs of these deployments in this work pool that no live executor holds, in
    that state for longer than ``grace``."""
    if not deployment_ids:
        return []
    active = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE))),
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids)),
        work_pool_filter=in_pool(work_pool),
        limit=200,
    )
    if not active:
        return []
    held = held_by_live_executors(store_url=store_url, stale_after=grace)
    cutoff = datetime.now(UTC) - grace
    return [run for run in active
            if run.id not in held and run.state is not None and run.state.timestamp < cutoff]
