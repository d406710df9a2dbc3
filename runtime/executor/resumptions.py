"""The states a resumed run goes through, and how often a run has been resumed.

A resumed run is Prefect's own ``AwaitingRetry`` (a Scheduled state): any executor of the
pool claims it again by proposing Pending, as it claims a new run, and runs it with the
same flow run id. Counting is read back from the run's state history, so it holds across
executors and restarts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.states import AwaitingRetry, State

ORPHAN_MESSAGE = "Resumed: the executor running it stopped"
INTERRUPTED_MESSAGE = "Resumed: its executor was stopped before it finished"
SLOT_LOST_MESSAGE = "Scheduled again: the Prefect server lost its concurrency slot before it started"
SLOT_LOST_CANCELLATION = "concurrency slot lost"
"""What Prefect's server says when it cancels a Pending run whose deployment concurrency
lease it no longer holds (its leases live in memory: a restarted server has none) and
every slot is taken (core_policy.SecureFlowConcurrencySlots, Prefect 3.8)."""


def orphan_resume_state(resume: int) -> State:
    return AwaitingRetry(scheduled_time=datetime.now(UTC),
                         message=f"{ORPHAN_MESSAGE} (resume {resume}); a live executor runs it again.")


def interrupted_state() -> State:
    return AwaitingRetry(scheduled_time=datetime.now(UTC), message=f"{INTERRUPTED_MESSAGE}; a live executor runs it again.")


def slot_lost_state() -> State:
    return AwaitingRetry(scheduled_time=datetime.now(UTC), message=f"{SLOT_LOST_MESSAGE}; a live executor runs it.")


def cancelled_before_it_started(states: list[State]) -> bool:
    """Whether the run's last attempt was cancelled by the server for a lost concurrency
    slot on its way from Pending to Running: no code of it ran, no person asked for it,
    so running it again is safe (and the only way its operation is not lost)."""
    if not states or not states[-1].is_cancelled():
        return False
    if SLOT_LOST_CANCELLATION not in (states[-1].message or "").lower():
        return False
    for state in reversed(states[:-1]):
        if state.is_running() or state.is_cancelling():
            return False
        if state.is_pending():
            return True
    return False


def count_orphan_resumes(client: SyncPrefectClient, flow_run_id: UUID) -> int:
    """How many times the run was resumed because the executor running it died."""
    return sum(1 for state in client.read_flow_run_states(flow_run_id)
               if state.is_scheduled() and (state.message or "").startswith(ORPHAN_MESSAGE))
