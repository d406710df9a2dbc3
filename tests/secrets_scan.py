"""Where an operator, an automation or a log shipper can read what a flow run did: its
parameters and state, its logs, its artifacts and the events related to it, through
Prefect's API. Tests look there for secrets that must never show up."""

from __future__ import annotations

import time
from uuid import UUID

import httpx


def readable_places(flow_run_id: UUID | str) -> dict[str, str]:
    """Each place, as text."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + 30
    while True:  # logs and events reach the API in batches, a moment after the run
        with get_client(sync_client=True) as prefect:
            run = prefect.read_flow_run(UUID(str(flow_run_id)))
            logs = prefect.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
            artifacts = prefect.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
            api_url = prefect.api_url
        events = httpx.post(f"{api_url}events/filter", trust_env=False, json={
            "filter": {"any_resource": {"id": [f"prefect.flow-run.{run.id}"]}}, "limit": 50}).json()["events"]
        if (logs and events) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert logs and events, (len(logs), len(events))  # the places looked at are not empty
    return {
        "run parameters": str(run.parameters), "run state": str(run.state),
        "logs": "\n".join(log.message for log in logs),
        "artifacts": "\n".join(str(a.data) + str(a.description) for a in artifacts),
        "events": str(events),
    }


def assert_nowhere(secrets: list[str], places: dict[str, str]) -> None:
    for where, text in places.items():
        for secret in secrets:
            assert secret not in text, f"a secret appears in {where}"
