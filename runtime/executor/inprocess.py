"""Run a claimed flow run in this process, on this thread, with Prefect's own flow engine.

This is what ``python -m prefect.engine`` does in the subprocess a runner starts, minus the
process: the same ``FlowRunEngine`` proposes Running, runs the flow and its task runs,
sends logs and reports the final state, so the run looks the same in the UI. Two things
differ:

* Flow heartbeats are off for the run (the engine joins its heartbeat thread at the end,
  which costs up to a second); the executor's own liveness signal replaces them.
* The engine would start, per run, a thread with its own event loop and a websocket
  subscription watching for a suspension request, and join it at the end (~150 ms of each
  run). The executor watches all its runs with one read instead and hands a suspension to
  the run with :func:`request_suspension`, the same call that watcher makes.
* An infrastructure fault (the Prefect server, the store or the network between them did
  not answer; see :mod:`runtime.executor.faults`) does not fail the run: the engine
  proposes ``AwaitingRetry`` with a growing delay, and a live executor claims the same
  flow run again and runs it from the start. Its steps find what they already committed
  under the operation id and ask the gateway about any call whose answer was lost.
* Cancellation cannot kill a process, so :class:`OperationCancelled` is raised inside the
  run's thread (see :class:`CancellableThreads`); the engine then records
  Cancelling -> Cancelled. Whatever the operation had recorded stays recorded: a refund
  reserved but not yet answered by the gateway is resolved later by its idempotency key,
  exactly as after a crash.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import Flow
from prefect.filesystems import WritableFileSystem
from prefect.results import resolve_result_storage
from prefect.settings import get_current_settings
from prefect._flow_run_suspension import (
    FlowRunSuspensionRequest,
    mark_flow_run_suspension_requested,
    register_flow_run_suspension_request,
)
from prefect.client.schemas.objects import FlowRun
from prefect.context import SettingsContext, SyncClientContext, get_settings_context
from prefect.flow_engine import FlowRunEngine, _flow_parameters
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY
from prefect.states import AwaitingRetry, State

from actions.effects import effects_summary
from runtime.executor import faults, resumptions


class OperationCancelled(BaseException):
    """Raised inside a run's thread when its flow run was cancelled (a BaseException, so
    the flow's own ``except Exception`` handlers do not swallow it)."""


class OperationInterrupted(BaseException):
    """Raised inside a run's thread when its executor stops before the run finished: the
    run asks to be resumed (AwaitingRetry) by another executor instead of ending."""


RESUME_MESSAGE = "Resuming after an infrastructure fault"


class WarmFlowRunEngine(FlowRunEngine):
    """Prefect's engine with the per-run suspension watcher left to the executor, and
    infrastructure faults resumed instead of failed."""

    def handle_exception(self, exc: Exception, msg: str | None = None, result_store=None) -> State:
        if not faults.is_infrastructure_fault(exc):
            return super().handle_exception(exc, msg=msg, result_store=result_store)
        attempt = max(self.flow_run.run_count, 1)
        if attempt >= faults.MAX_FAULT_ATTEMPTS:
            summary = effects_summary(self.flow_run.id)
            return super().handle_exception(exc, msg=(
                f"Gave up after {attempt} attempts, each stopped by an infrastructure fault"
                f" (last: {faults.describe(exc)}). {summary}").strip(), result_store=result_store)
        delay = faults.resume_delay(attempt)
        self.logger.warning("infrastructure fault on attempt %d (%s): resuming in %s",
                            attempt, faults.describe(exc), delay)
        # If the server is what went away this raises too, and the run stays Running until the
        # executor finds it held by no one and resumes it (WarmExecutor._resume_orphans).
        return self.set_state(AwaitingRetry(
            scheduled_time=datetime.now(UTC) + delay,
            message=f"{RESUME_MESSAGE} (attempt {attempt}: {faults.describe(exc)}); it runs again in {delay.seconds} s.",
        ))

    @contextlib.contextmanager
    def setup_flow_run_suspension_request(self) -> Iterator[FlowRunSuspensionRequest]:
        request = self._get_flow_run_suspension_request()
        with register_flow_run_suspension_request(self.flow_run.id, request):
            request.raise_if_requested()
            yield request


def request_suspension(flow_run_id: UUID, state: State) -> bool:
    """Tell a run of this process that it was suspended (it stops at its next check)."""
    return mark_flow_run_suspension_requested(flow_run_id, state)


@functools.cache
def _settings_without_heartbeats() -> SettingsContext:
    # Built once: a settings copy costs ~90 ms of validation.
    context = get_settings_context()
    return SettingsContext(
        profile=context.profile,
        settings=context.settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    )


def server_default_result_storage(client) -> WritableFileSystem | Path | None:
    """The result storage Prefect's engine would look up at the start of every run
    (``GET /admin/storage``, about 3 ms of the server's CPU), read once: the server's default
    block, or the local path when it has none. None when the engine asks nothing (a default
    block in the settings) or the server did not answer: then runs look it up as usual."""
    if get_current_settings().results.default_storage_block is not None:
        return None
    try:
        block_id = client.read_server_default_result_storage().default_result_storage_block_id
        if block_id is None:
            return Path(get_current_settings().results.local_storage_path)  # Prefect takes an unsaved block as a path
        return resolve_result_storage(block_id, _sync=True)
    except Exception as exc:  # noqa: BLE001 - not knowing it only costs the per-run lookup
        logging.getLogger(__name__).warning("default result storage not read (%s): each run reads it", exc)
        return None


def with_default_result_storage(flow: Flow, storage: WritableFileSystem | Path | None) -> Flow:
    """``flow`` with ``storage`` (:func:`server_default_result_storage`) as its own, unless it
    names one, leaves persistence to Prefect's default (storage would switch it on), or
    ``storage`` is None. A default changed on the server applies from the executor's next start."""
    if storage is None or flow.result_storage is not None or flow.persist_result is None:
        return flow
    return flow.with_options(result_storage=storage)


def prepare_run_thread() -> None:
    """Initializer of the threads that run flows: their runs share one Prefect client per
    thread (a new one costs ~30 ms, mostly building its TLS context) and the settings
    without heartbeats. Entered for the thread's life, never left."""
    _settings_without_heartbeats().model_copy().__enter__()
    SyncClientContext().__enter__()


def run_flow_in_thread(flow: Flow, flow_run: FlowRun) -> State:
    """Run ``flow_run`` (already claimed: Pending) to a final state on the current thread."""
    if flow.isasync or flow.isgenerator:
        raise TypeError(f"flow {flow.name!r}: the warm executor runs plain synchronous flows")
    parameters: dict[str, Any] = _flow_parameters(flow=flow, flow_run=flow_run, parameters=None)
    engine = WarmFlowRunEngine(flow=flow, flow_run=flow_run, parameters=parameters)
    with _settings_without_heartbeats().model_copy(), SyncClientContext.get_or_create():
        with engine.start():
            while engine.is_running():
                try:
                    with engine.run_context():
                        engine.call_flow_fn()
                except OperationCancelled as exc:
                    engine.handle_cancellation(exc)
                except OperationInterrupted:
                    if _still_this_attempt(engine):
                        engine.logger.warning("the executor is stopping: this run will be resumed by a live executor")
                        engine.set_state(resumptions.interrupted_state())
    return engine.state


def _still_this_attempt(engine: FlowRunEngine) -> bool:
    """The run is not final and the server still has this attempt's state: an interrupt
    that lands late (after Completed, or after another executor took the run over) must
    not reopen it."""
    if engine.state.is_final():
        return False
    current = engine.client.read_flow_run(engine.flow_run.id).state
    return current is not None and current.id == engine.state.id


class CancellableThreads:
    """Which thread runs which flow run, so a cancellation reaches that run and no other.

    ``PyThreadState_SetAsyncExc`` raises an exception in another thread at its next
    bytecode. The lock makes delivery and the end of a run mutually exclusive, and the end
    of a run clears anything pending, so an exception meant for one run can never land in
    the next run a pooled thread picks up.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: dict[UUID, int] = {}
        self._delivered: set[UUID] = set()

    def enter(self, flow_run_id: UUID) -> None:
        with self._lock:
            self._threads[flow_run_id] = threading.get_ident()

    def leave(self, flow_run_id: UUID) -> None:
        with self._lock:
            thread_id = self._threads.pop(flow_run_id, None)
            self._delivered.discard(flow_run_id)
            if thread_id is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)

    def cancel(self, flow_run_id: UUID) -> bool:
        """Raise :class:`OperationCancelled` in the run's thread, once; False if it is not
        running here or was already told (a second exception would land in the engine's
        own handling of the first)."""
        return self._raise_in(flow_run_id, OperationCancelled)

    def interrupt(self, flow_run_id: UUID) -> bool:
        """Raise :class:`OperationInterrupted` in the run's thread, once (see :meth:`cancel`)."""
        return self._raise_in(flow_run_id, OperationInterrupted)

    def _raise_in(self, flow_run_id: UUID, exception: type[BaseException]) -> bool:
        with self._lock:
            thread_id = self._threads.get(flow_run_id)
            if thread_id is None or flow_run_id in self._delivered:
                return False
            self._delivered.add(flow_run_id)
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exception))
            return True
