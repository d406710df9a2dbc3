"""Background operations are Prefect flow runs: start one from a deployment, read one back."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.context import SettingsContext, get_settings_context
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, Settings

from api.errors import ApiError

# Salesforce BackgroundOperation.Status for each Prefect state type.
_STATUS = {
    StateType.SCHEDULED: "Scheduled",
    StateType.PENDING: "Waiting",
    StateType.RUNNING: "Running",
    StateType.PAUSED: "Waiting",
    StateType.COMPLETED: "Complete",
    StateType.FAILED: "Error",
    StateType.CRASHED: "Error",
    StateType.CANCELLING: "Running",  # refunds may still be going out until it is CANCELLED
    StateType.CANCELLED: "Canceled",
}


# Called with each flow run this process creates: an executor in the same process takes it
# at once instead of at its next poll (see runtime.executor).
_created_listeners: list[Callable[[FlowRun], None]] = []


def on_operation_created(listener: Callable[[FlowRun], None]) -> None:
    _created_listeners.append(listener)


# A caller waits for the facade; the facade must not wait a minute for a Prefect server that
# is down (the client's default is 5 retries, 2 + 4 + ... + 32 s): one quick retry, then 503.
FACADE_CLIENT_RETRIES = 1


_derived: dict[int, tuple[Settings, Settings]] = {}


def _facade_settings(base: Settings) -> Settings:
    """``base`` with the facade's retries (kept per base settings object: building one is ~1 ms)."""
    known = _derived.get(id(base))
    if known is None or known[0] is not base:
        known = _derived[id(base)] = (base, base.copy_with_update(updates={PREFECT_CLIENT_MAX_RETRIES: FACADE_CLIENT_RETRIES}))
    return known[1]


class _SharedClient:
    """One Prefect client for the process, opened on first use and kept (thread-safe: it
    is an httpx client). A new client per request costs ~30 ms of CPU, mostly building
    its TLS context, which was most of what accepting an operation took. Inside the
    ``with`` block the client retries a lost server once (:data:`FACADE_CLIENT_RETRIES`)."""

    _lock = threading.Lock()
    _client: SyncPrefectClient | None = None
    _api_url: str | None = None

    def __enter__(self) -> SyncPrefectClient:
        context = get_settings_context()
        self._settings = SettingsContext(profile=context.profile, settings=_facade_settings(context.settings))
        self._settings.__enter__()
        api_url = context.settings.api.url
        with self._lock:
            if _SharedClient._client is None or _SharedClient._api_url != api_url:  # tests repoint the API
                client = get_client(sync_client=True)
                client.__enter__()
                _SharedClient._client, _SharedClient._api_url = client, api_url
            return _SharedClient._client

    def __exit__(self, *exc_info) -> None:
        self._settings.__exit__(*exc_info)  # the shared client stays open for the next request


def _client() -> _SharedClient:
    return _SharedClient()


@functools.lru_cache(maxsize=32)
def deployment_id(name: str) -> UUID:
    with _client() as client:
        try:
            return client.read_deployment_by_name(name).id
        except ObjectNotFound:
            raise ApiError(503, "SERVICE_UNAVAILABLE", f"deployment {name} is not deployed; start the engine first") from None


def engine_deployment_ids() -> set[UUID]:
    """The deployments whose runs are this engine's background operations."""
    from api.settings import get_api_settings

    ids = set()
    for name in get_api_settings().operation_deployments:
        try:
            ids.add(deployment_id(name))
        except ApiError:
            continue
    return ids


def existing_operation(deployment_name: str, idempotency_key: str, parameters: dict[str, Any]) -> UUID | None:
    """The operation already started with this key, if any; a different request under the
    same key is refused (409) rather than answered with someone else's operation."""
    from prefect.client.schemas.filters import (
        DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterIdempotencyKey,
    )

    with _client() as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(idempotency_key=FlowRunFilterIdempotencyKey(any_=[idempotency_key])),
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id(deployment_name)])),
            limit=1,
        )
    if not runs:
        return None
    _same_request(runs[0], parameters)
    return runs[0].id


def _comparable(value: Any) -> Any:
    """Parameters as compared for a retry: amounts by value, whether stored as a JSON number
    or (before the deployments enforced their schema) as a decimal string."""
    if isinstance(value, dict):
        return {key: _comparable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return Decimal(value)
    return value


_DECIMAL = re.compile(r"-?\d+(\.\d+)?")


def _same_request(flow_run: FlowRun, parameters: dict[str, Any]) -> None:
    if _comparable(flow_run.parameters) != _comparable(parameters):
        raise ApiError(
            409, "IDEMPOTENCY_KEY_REUSED",
            "this Idempotency-Key was used for a different request; use a new key for a new request",
            {"backgroundOperationId": None},
        )


def start_operation(deployment_name: str, parameters: dict[str, Any], *, idempotency_key: str | None = None) -> UUID:
    """Create a flow run of the deployment; its id is the background operation id.

    With ``idempotency_key`` Prefect itself guarantees one flow run per key and deployment
    flow, so two racing requests with the same key get the same operation.
    """
    with _client() as client:
        flow_run = client.create_flow_run_from_deployment(
            deployment_id(deployment_name), parameters=parameters, idempotency_key=idempotency_key
        )
    if idempotency_key is not None:
        _same_request(flow_run, parameters)
    for listener in _created_listeners:
        listener(flow_run)
    return flow_run.id


def _error_message(flow_run: FlowRun) -> str | None:
    state = flow_run.state
    if state is None or state.type not in (StateType.FAILED, StateType.CRASHED):
        return None
    message = state.message or "The operation failed"
    prefix = "Flow run encountered an exception: "
    return message[len(prefix):] if message.startswith(prefix) else message


def read_operation(operation_id: str) -> dict[str, Any]:
    """The flow run as a Salesforce BackgroundOperation record."""
    try:
        run_id = UUID(operation_id)
    except ValueError:
        raise ApiError(404, "NOT_FOUND", f"BackgroundOperation {operation_id} does not exist") from None
    with _client() as client:
        try:
            flow_run = client.read_flow_run(run_id)
        except ObjectNotFound:
            raise ApiError(404, "NOT_FOUND", f"BackgroundOperation {operation_id} does not exist") from None
    if flow_run.deployment_id not in engine_deployment_ids():
        raise ApiError(404, "NOT_FOUND", f"BackgroundOperation {operation_id} does not exist")
    status = _STATUS.get(flow_run.state.type, "New") if flow_run.state else "New"
    return {
        "attributes": {"type": "BackgroundOperation"},
        "Id": str(flow_run.id),
        "Name": flow_run.name,
        "Status": status,
        "Error": _error_message(flow_run),
        "CreatedDate": flow_run.created,
        "SubmittedAt": flow_run.created,
        "StartedAt": flow_run.start_time,
        "FinishedAt": flow_run.end_time if status in ("Complete", "Error", "Canceled") else None,
        "ExecutionGroup": flow_run.deployment_id and str(flow_run.deployment_id),
        "StateName": flow_run.state.name if flow_run.state else None,
    }


COMPOSITION_BLOCK_TYPE = "om-composition"


def read_composition_data(name: str) -> dict[str, Any] | None:
    """The saved data of the om-composition block named ``name``, or None."""
    with _client() as client:
        try:
            return dict(client.read_block_document_by_name(name=name, block_type_slug=COMPOSITION_BLOCK_TYPE).data)
        except ObjectNotFound:
            return None
