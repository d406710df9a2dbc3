"""The warm executor: a long-lived process that has imported the flows once and runs the
flow runs of their deployments on threads, with Prefect's own flow engine.

Every operation is still a flow run of a deployed flow, created by whoever starts it (the
REST facade, the Prefect UI or API, a schedule, an automation): its id is the background
operation id and its states, task runs and logs are in the UI. What changes is the
time between creation and completion: no poll interval to wait for and no new Python
process to start.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import os
import random
import secrets
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.logging import get_logger
from prefect.states import Cancelled, Crashed

from actions.effects import effects_summary
from gateways import send_guard
from runtime.executor import claims, faults, liveness, resumptions, unsent
from runtime.executor.inprocess import (
    CancellableThreads,
    OperationCancelled,
    OperationInterrupted,
    prepare_run_thread,
    request_suspension,
    run_flow_in_thread,
    server_default_result_storage,
    with_default_result_storage,
)

logger = get_logger("om.executor")  # under "prefect.": Prefect's console handler shows it

WORK_POOL_TYPE = "om-warm"  # the executor's work pools; no stock Prefect worker serves this type


BEAT_GAP_TOLERATED = 3  # beats: a longer silence of the store means an outage, not a hiccup


def _elapsed(monotonic_ns: int) -> timedelta:
    return timedelta(microseconds=(time.monotonic_ns() - monotonic_ns) // 1000)


@dataclass(frozen=True)
class ExecutorSettings:
    work_pool: str = "om-warm"
    limit: int = 10  # flow runs at a time in this process
    poll_seconds: float = 0.15  # a read; runs created in this process are taken at once
    heartbeat_seconds: float = 1.0
    orphan_grace: timedelta = timedelta(seconds=15)
    max_orphan_resumes: int = 3  # a run whose executor dies this often under it is Crashed
    cancel_check_seconds: float = 0.5
    reap_seconds: float = 5.0
    drain_seconds: float = 30.0
    recovery_flow: str | None = "resolve-gateway-outcomes"  # run at once after marking runs Crashed
    store_url: str | None = None  # None: the configured store (OM_DATABASE_URL)
    executor_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}")


class WarmExecutor:
    """Claims due runs of its deployments and runs them in this process.

    Example:
        ```python
        from runtime.executor import ExecutorSettings, WarmExecutor
        from runtime.serve import served

        executor = WarmExecutor(served(), ExecutorSettings(limit=8))
        executor.start()          # applies the deployments into the work pool, then polls
        ...
        executor.stop()           # drains: finishes what it holds, claims nothing new
        ```
    """

    def __init__(self, served: list[tuple[Flow, RunnerDeployment]], settings: ExecutorSettings | None = None):
        self.settings = settings or ExecutorSettings()
        self._served = served
        self._flows: dict[UUID, Flow] = {}
        self._deployment_ids: dict[str, UUID] = {}  # "flow/deployment" -> id
        self._deployment_of_flow: dict[str, UUID] = {}
        self._active: dict[UUID, Future] = {}
        self._active_deployments: dict[UUID, UUID] = {}  # run -> deployment
        self._active_lock = threading.Lock()
        self._offered: collections.deque[FlowRun] = collections.deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()  # claim nothing new
        self._closed = threading.Event()  # drained: heartbeats and housekeeping end
        self._paused = False
        self._threads: list[threading.Thread] = []
        self._cancellable = CancellableThreads()
        self._thread_state = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_limit: int | None = None
        self._deployment_limits: dict[UUID, int] = {}
        self._beating_since: int | None = None  # monotonic_ns since which beats have been landing
        self._last_beat: int = 0  # monotonic_ns of the last beat that landed
        self._held_since: int = 0  # monotonic_ns at which the last beat that landed was sent
        self.started_runs = 0
        self.crashed_orphans = 0
        self.resumed_orphans = 0

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        with get_client(sync_client=True) as client:
            self._ensure_work_pool(client)
            storage = server_default_result_storage(client)  # once, not at the start of every run
        for flow, deployment in self._served:
            deployment_id = deployment.apply(work_pool_name=self.settings.work_pool)
            self._flows[deployment_id] = with_default_result_storage(flow, storage)
            self._deployment_ids[f"{flow.name}/{deployment.name}"] = deployment_id
            self._deployment_of_flow[flow.name] = deployment_id
        with get_client(sync_client=True) as client:
            self._read_limits(client)
        self._pool = ThreadPoolExecutor(max_workers=self.settings.limit, thread_name_prefix="om-run",
                                        initializer=prepare_run_thread)
        sent = time.monotonic_ns()
        liveness.beat(store_url=self.settings.store_url, executor_id=self.settings.executor_id,
                      work_pool=self.settings.work_pool, run_ids=[])
        self._held_since = sent
        for target in (self._dispatch_loop, self._housekeeping_loop, self._heartbeat_loop):
            thread = threading.Thread(target=target, name=f"om-executor-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info("warm executor %s serving %d deployments from work pool %r, %d at a time",
                    self.settings.executor_id, len(self._flows), self.settings.work_pool, self.settings.limit)

    def stop(self) -> None:
        """Graceful drain: claim nothing new, let held runs finish for up to
        ``drain_seconds`` (still beating, so no other executor takes them for dead), then
        interrupt any still going: each asks to be resumed (AwaitingRetry), and a live
        executor runs it again with the same flow run id."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake.set()
        self._threads[0].join(timeout=5)  # the dispatcher: no claim in flight after this
        deadline = time.monotonic() + self.settings.drain_seconds
        while self.active_run_ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        leftovers = self.active_run_ids()
        for run_id in leftovers:
            self._cancellable.interrupt(run_id)  # stop it where it is; it asks to be resumed
        deadline = time.monotonic() + 5
        while self.active_run_ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        stuck = self.active_run_ids()
        if stuck:  # blocked in a call: once this process is gone, they are orphans and resumed
            logger.warning("flow runs %s did not stop; another executor resumes them", [str(r) for r in stuck])
        self._closed.set()
        for thread in self._threads[1:]:
            thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        liveness.forget(store_url=self.settings.store_url, executor_id=self.settings.executor_id)
        logger.info("warm executor %s stopped after %d runs (%d left to recovery)",
                    self.settings.executor_id, self.started_runs, len(leftovers))

    @property
    def deployment_ids(self) -> dict[str, UUID]:
        return dict(self._deployment_ids)

    def active_run_ids(self) -> list[UUID]:
        with self._active_lock:
            return list(self._active)

    def offer(self, flow_run: FlowRun) -> None:
        """A run just created in this process (by the facade): claim it now, not at the next poll."""
        if (flow_run.deployment_id in self._flows and not self._stopping.is_set()
                and flow_run.state is not None and flow_run.state.is_scheduled()):
            self._offered.append(flow_run)
            self._wake.set()

    # --- dispatching -------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        with get_client(sync_client=True) as client:
            while not self._stopping.is_set():
                self._wake.wait(self.settings.poll_seconds)
                self._wake.clear()
                try:
                    self._dispatch_once(client)
                except Exception:
                    logger.exception("dispatch failed; retrying")
                    self._stopping.wait(1)

    def _free_slots(self) -> int:
        with self._active_lock:
            return self.settings.limit - len(self._active)

    def _dispatch_once(self, client: SyncPrefectClient) -> None:
        candidates: list[FlowRun] = []
        while self._offered:
            candidates.append(self._offered.popleft())
        if self._paused:
            return  # a paused work pool is the operators' kill switch: its runs stay Scheduled
        free = self._free_slots()
        if free > len(candidates):
            candidates += claims.due_runs(client, work_pool=self.settings.work_pool,
                                          deployment_ids=list(self._flows), limit=free - len(candidates))
        if candidates and self._pool_limit is not None:
            free = min(free, self._pool_limit - claims.active_in_pool(client, self.settings.work_pool))
        seen: set[UUID] = set()
        for flow_run in candidates:
            if free <= 0 or self._stopping.is_set() or self._deployment_full(flow_run.deployment_id):
                continue  # left SCHEDULED: a later poll (here or elsewhere) takes it
            if flow_run.id in seen or flow_run.id in self._active:
                continue
            seen.add(flow_run.id)
            claimed = claims.claim(client, flow_run, reserve=self._reserve)
            if claimed is None:
                continue
            free -= 1
            self._submit(claimed)

    def _reserve(self, flow_run: FlowRun) -> bool:
        return liveness.reserve_claim(store_url=self.settings.store_url, executor_id=self.settings.executor_id,
                                      flow_run=flow_run)

    def _deployment_full(self, deployment_id: UUID) -> bool:
        """The deployment's concurrency limit is reached by this executor's own runs. The
        server enforces the limit across executors too, but by rescheduling the run
        (AwaitingConcurrencySlot, PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS
        later): better not to claim what cannot start."""
        limit = self._deployment_limits.get(deployment_id)
        if limit is None:
            return False
        with self._active_lock:
            mine = sum(1 for future_run in self._active_deployments.values() if future_run == deployment_id)
        return mine >= limit

    def _submit(self, flow_run: FlowRun) -> None:
        flow = self._flows[flow_run.deployment_id]
        with self._active_lock:
            self._active_deployments[flow_run.id] = flow_run.deployment_id
            self._active[flow_run.id] = self._pool.submit(self._run, flow, flow_run)
        self.started_runs += 1

    def _run(self, flow: Flow, flow_run: FlowRun) -> None:
        self._cancellable.enter(flow_run.id)
        try:
            # a fresh copy of the thread's base context: nothing one run leaves set reaches the next
            context = self._base_context()
            context.run(send_guard.set_guard, self._may_send)
            state = context.run(run_flow_in_thread, flow, flow_run)
            logger.debug("flow run %s ended %s", flow_run.id, state.type.value)
            if state.is_cancelled():
                self._schedule_again_if_slot_lost(flow_run.id)
        except OperationCancelled:
            logger.info("flow run %s was cancelled outside its flow function", flow_run.id)
        except OperationInterrupted:  # outside the flow function: the engine recorded Crashed
            logger.info("flow run %s was interrupted outside its flow function; it will be resumed", flow_run.id)
            self._resume_crashed(flow_run.id)
        except Exception as exc:
            if faults.is_infrastructure_fault(exc):
                # The engine could not record a state (the server or the network is down): the
                # run is left as the server last knew it, and once this executor no longer
                # lists it, whichever executor sees it first resumes it.
                logger.warning("flow run %s stopped by an infrastructure fault (%s); it will be resumed",
                               flow_run.id, faults.describe(exc))
            else:  # before the engine started (parameters, flow kind): fail it now
                logger.exception("flow run %s could not start", flow_run.id)
                self._fail(flow_run.id, f"The executor could not start the run: {exc!r}")
        except BaseException:
            logger.exception("flow run %s: the engine raised", flow_run.id)
        finally:
            while True:  # a cancellation (or a timeout) may still land until leave() has cleared it
                try:
                    self._cancellable.leave(flow_run.id)
                    break
                except BaseException:
                    continue
            with self._active_lock:
                self._active.pop(flow_run.id, None)
                self._active_deployments.pop(flow_run.id, None)
            self._wake.set()  # a slot is free

    def _base_context(self) -> contextvars.Context:
        """A copy of this pool thread's context as it was before its first run (its Prefect
        client and settings, from :func:`prepare_run_thread`)."""
        base = getattr(self._thread_state, "context", None)
        if base is None:
            base = self._thread_state.context = contextvars.copy_context()
        return base.copy()

    def _resume_crashed(self, flow_run_id: UUID) -> None:
        try:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(flow_run_id).state
                if state is not None and state.type == StateType.CRASHED:
                    client.set_flow_run_state(flow_run_id, resumptions.interrupted_state(), force=True)
        except Exception:
            logger.exception("could not resume flow run %s", flow_run_id)

    def _schedule_again_if_slot_lost(self, flow_run_id: UUID) -> None:
        """A run the server cancelled on its way to Running because its concurrency lease
        was lost (a restarted server) is an accepted operation that never started: it is
        scheduled again, not lost."""
        try:
            with get_client(sync_client=True) as client:
                if resumptions.cancelled_before_it_started(client.read_flow_run_states(flow_run_id)):
                    logger.warning("flow run %s lost its concurrency slot before it started; scheduled again", flow_run_id)
                    client.set_flow_run_state(flow_run_id, resumptions.slot_lost_state(), force=True)
        except Exception:
            logger.exception("could not schedule flow run %s again", flow_run_id)

    def _fail(self, flow_run_id: UUID, message: str) -> None:
        from prefect.states import Failed

        try:
            with get_client(sync_client=True) as client:
                client.set_flow_run_state(flow_run_id, Failed(message=message))
        except Exception:
            logger.exception("could not mark flow run %s Failed", flow_run_id)

    def _may_send(self) -> str | None:
        """Whether a run of this executor may still send a gateway call (None) or why not.

        Other executors resume this one's runs once its heartbeat is ``orphan_grace`` old in
        the store. A beat that landed was written after it was sent, so measured from the
        sending, this executor never thinks its hold fresher than it is. Sending stops at
        half the grace period: a call sent before then has the other half to finish before
        anyone may take the run over, and the resumed run asks the gateway by key before it
        sends. Only a call still in flight after that half (a gateway slower than
        ``orphan_grace / 2``) relies on the gateway's own idempotency key."""
        if self._closed.is_set():  # its heartbeat row is gone: others may resume its runs now
            return f"executor {self.settings.executor_id} has stopped"
        held_for = _elapsed(self._held_since)
        if held_for <= self.settings.orphan_grace / 2:
            return None
        return (f"executor {self.settings.executor_id} last reached the store {held_for.total_seconds():.1f} s ago;"
                f" another executor may resume its runs")

    # --- housekeeping: liveness, cancellation, orphans, pool limit ------------------------

    def _heartbeat_loop(self) -> None:
        """Its own thread and nothing else, so slow Prefect calls never delay a beat; it
        beats until the drain is over."""
        settings = self.settings
        while not self._closed.wait(settings.heartbeat_seconds):
            sent = time.monotonic_ns()
            try:
                liveness.beat(store_url=settings.store_url, executor_id=settings.executor_id,
                              work_pool=settings.work_pool, run_ids=self.active_run_ids())
                self._held_since = sent
                self._last_beat = time.monotonic_ns()
                if self._beating_since is None:
                    self._beating_since = self._last_beat
            except Exception as exc:
                # A beat that fails now and then does not count as an outage: the others' beats
                # land too, so they still look alive. Silence for longer than a few beats does.
                if not self._beats_landing():
                    self._beating_since = None
                logger.warning("heartbeat failed (%s); retrying", faults.describe(exc))

    def _store_reachable_for(self, period: timedelta) -> bool:
        """This executor's own beats have reached the store for at least ``period`` (with no
        gap longer than a few beats): only then is another executor's silence its own, not
        an outage every beat met."""
        since = self._beating_since
        return since is not None and self._beats_landing() and _elapsed(since) >= period

    def _beats_landing(self) -> bool:
        """The last beat landed no more than BEAT_GAP_TOLERATED beats ago."""
        return _elapsed(self._last_beat) <= timedelta(seconds=BEAT_GAP_TOLERATED * self.settings.heartbeat_seconds)

    def _housekeeping_loop(self) -> None:
        settings = self.settings
        next_cancel = 0.0
        next_pool = time.monotonic() + 5
        next_reap = time.monotonic() + random.uniform(0, settings.reap_seconds)  # executors spread out
        next_worker_beat = 0.0
        with get_client(sync_client=True) as client:
            while not self._closed.is_set():
                now = time.monotonic()
                try:
                    if now >= next_cancel:  # also while draining: a cancel still stops a held run
                        next_cancel = now + settings.cancel_check_seconds
                        self._deliver_cancellations(client)
                    if not self._stopping.is_set():
                        if now >= next_pool:
                            next_pool = now + 5
                            self._read_limits(client)
                        if now >= next_worker_beat:  # shows the executor under the work pool in the UI
                            next_worker_beat = now + 15
                            client.send_worker_heartbeat(settings.work_pool, settings.executor_id,
                                                         heartbeat_interval_seconds=15)
                        if now >= next_reap and self._store_reachable_for(settings.orphan_grace):
                            next_reap = now + settings.reap_seconds
                            self._resume_orphans(client)
                            self._start_unsent(client)
                except Exception:
                    logger.exception("housekeeping failed; retrying")
                self._closed.wait(0.1)

    def _read_limits(self, client: SyncPrefectClient) -> None:
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        pool = client.read_work_pool(self.settings.work_pool)
        self._pool_limit, self._paused = pool.concurrency_limit, pool.is_paused
        deployments = client.read_deployments(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=list(self._flows))))
        self._deployment_limits = {d.id: d.global_concurrency_limit.limit for d in deployments
                                   if d.global_concurrency_limit is not None and d.global_concurrency_limit.active}

    def _deliver_cancellations(self, client: SyncPrefectClient) -> None:
        """Cancellations and suspensions (Prefect's per-run watchers do this by websocket)."""
        for flow_run in claims.runs_in_states(client, self.active_run_ids(), [StateType.CANCELLING, StateType.PAUSED]):
            if flow_run.state.type == StateType.PAUSED:
                request_suspension(flow_run.id, flow_run.state)
            elif self._cancellable.cancel(flow_run.id):
                logger.info("cancelling flow run %s", flow_run.id)

    def _resume_orphans(self, client: SyncPrefectClient) -> None:
        """Runs held by no live executor (it was killed, or lost the server mid-run) are
        resumed: set to AwaitingRetry, claimed again like any due run, and carried through
        from the start with the same flow run id. A run that was being cancelled is
        Cancelled; one whose executor died on it ``max_orphan_resumes`` times (it may be
        what kills them) is Crashed, with what it changed in its message."""
        orphans = liveness.orphaned_runs(client, store_url=self.settings.store_url, work_pool=self.settings.work_pool,
                                         deployment_ids=list(self._flows), grace=self.settings.orphan_grace)
        settled = False
        for flow_run in orphans:
            if flow_run.id in self.active_run_ids():
                continue
            current = client.read_flow_run(flow_run.id)  # it may have moved on since the list was read
            if current.state is None or current.state.id != flow_run.state.id:
                continue
            # One executor acts on one orphaned state: the claim row keyed by that state's id
            # (the same table that makes claiming a Scheduled run exclusive). Without it, two
            # reapers could both propose AwaitingRetry, the second on top of the first's new
            # attempt, and the run would run twice.
            if not liveness.reserve_claim(store_url=self.settings.store_url, executor_id=self.settings.executor_id,
                                          flow_run=current):
                continue
            if current.state.type == StateType.CANCELLING:
                logger.warning("flow run %s was being cancelled when its executor stopped: Cancelled", flow_run.id)
                client.set_flow_run_state(flow_run.id, Cancelled(message="Cancelled; its executor stopped meanwhile."))
                settled = True
                continue
            resumed = resumptions.count_orphan_resumes(client, flow_run.id)
            if resumed >= self.settings.max_orphan_resumes:
                logger.error("flow run %s lost its executor %d times: Crashed", flow_run.id, resumed + 1)
                times = resumed + 1
                self._crash(client, flow_run.id, (
                    f"Not resumed again: its executor stopped while running it, {times} time{'s' if times > 1 else ''}."
                    f" {effects_summary(flow_run.id, store_url=self.settings.store_url)}"))
                self.crashed_orphans += 1
                settled = True
                continue
            logger.warning("flow run %s is held by no live executor: resuming it", flow_run.id)
            result = client.set_flow_run_state(flow_run.id, resumptions.orphan_resume_state(resumed + 1))
            self.resumed_orphans += 1
            if result.state is not None and result.state.is_scheduled():
                self.offer(client.read_flow_run(flow_run.id))  # resumed here now, unless another claims it first
        if settled:
            self._start_recovery(client)

    def _start_unsent(self, client: SyncPrefectClient) -> None:
        sender = next((dep_id for name, dep_id in self._deployment_ids.items()
                       if name.split("/")[0] == unsent.SEND_FLOW), None)
        if sender is None:
            return
        for flow_run in unsent.start_unsent_payment_refunds(client, store_url=self.settings.store_url,
                                                            deployment_id=sender):
            logger.warning("payment refund %s had no send run (the facade lost Prefect): started %s",
                           flow_run.parameters.get("refund_id"), flow_run.id)
            self.offer(flow_run)

    def _crash(self, client: SyncPrefectClient, flow_run_id: UUID, message: str) -> None:
        # Not forced: a run that finished meanwhile keeps its final state (Prefect refuses
        # final -> Crashed), so a completed operation is never reported as an error.
        with contextlib.suppress(ObjectNotFound):  # deleted meanwhile: nothing to mark
            client.set_flow_run_state(flow_run_id, Crashed(message=message))

    def _start_recovery(self, client: SyncPrefectClient) -> None:
        """Resolve the money a crashed run may have left reserved, now rather than at the
        resolver's next schedule (it never retries blind: it asks the gateway by key)."""
        name = self.settings.recovery_flow
        if name and name in self._deployment_of_flow:
            # only what has waited at least the grace period: a refund recorded a moment ago
            # by a live operation (its send run not yet created) is not the crashed run's
            margin = int(self.settings.orphan_grace.total_seconds())
            client.create_flow_run_from_deployment(self._deployment_of_flow[name], parameters={"older_than_seconds": margin})

    def _ensure_work_pool(self, client: SyncPrefectClient) -> None:
        try:
            client.read_work_pool(self.settings.work_pool)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another executor made it first
                client.create_work_pool(WorkPoolCreate(
                    name=self.settings.work_pool, type=WORK_POOL_TYPE,
                    description="Order Management operations, run by warm executors (om-engine executor).",
                ))
