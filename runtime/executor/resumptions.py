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


def orphan_resume_state(resume: int) -> State:
    return AwaitingRetry(scheduled_time=datetime.now(UTC),
                         message=f"{ORPHAN_MESSAGE} (resume {resume}); a live executor runs it again.")


def interrupted_state() -> State:
    return AwaitingRetry(scheduled_time=datetime.now(UTC), message=f"{INTERRUPTED_MESSAGE}; a live executor runs it again.")


def count_orphan_resumes(client: SyncPrefectClient, flow_run_id: UUID) -> int:
    """How many times the run was resumed because the executor running it died."""
    return sum(1 for state in client.read_flow_run_states(flow_run_id)
               if state.is_scheduled() and (state.message or "").startswith(ORPHAN_MESSAGE))
