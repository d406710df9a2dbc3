"""The soak: the stack of ``./om up`` at a steady load for a long time (30 minutes by
default), and how the memory of each of its processes moves.

It starts the stack in a scratch directory, makes ``orders`` orders paid 100.00 each, and
starts one Ensure Refunds Async of 0.01 excess funds every ``1 / rate`` seconds over
HTTP, round robin over the orders. Every ``sample_seconds`` it records the memory of each
part as the sum of its processes' proportional set size of anonymous and shared-memory
pages (PSS: private pages plus a fair share of shared ones, so PostgreSQL's shared
buffers are not counted once per backend; file-backed code pages left out, see
:func:`_memory`):
the Prefect server (with its services), the engine (warm executor and facade), and
PostgreSQL (postmaster and backends). Growth is measured from the sample after
``warmup_seconds`` (imports, caches and pools filled) to the last one.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx

from bench.operations import _orders

API = "/services/data/v60.0"


@dataclass
class SoakFigures:
    minutes: float
    rate: float
    started: int  # operations accepted
    completed: int
    failed: int
    samples: list[dict[str, float]] = field(default_factory=list)  # {"t": s, part: MB of PSS, ...}
    warm_index: int = 0

    def second_half_slope(self) -> dict[str, float]:
        """Per part: MB a minute over the second half of the run after warm-up (a least-squares
        line through those samples). A part that only fills caches and pools levels off, and
        this is about zero; a leak keeps its slope whatever the run's length."""
        warm = self.samples[self.warm_index:]
        half = warm[len(warm) // 2:]
        if len(half) < 2:
            return {}
        minutes = [sample["t"] / 60 for sample in half]
        mean_t = sum(minutes) / len(minutes)
        spread = sum((m - mean_t) ** 2 for m in minutes)
        slopes = {}
        for part in half[0]:
            if part == "t":
                continue
            values = [sample[part] for sample in half]
            mean_v = sum(values) / len(values)
            slopes[part] = round(sum((m - mean_t) * (v - mean_v) for m, v in zip(minutes, values, strict=True)) / spread, 3)
        return slopes

    def growth(self) -> dict[str, tuple[float, float, float]]:
        """Per part: (MB after warm-up, MB at the end, growth %)."""
        first, last = self.samples[self.warm_index], self.samples[-1]
        return {part: (first[part], last[part], 100.0 * (last[part] - first[part]) / first[part] if first[part] else 0.0)
                for part in first if part != "t"}


def _memory(process) -> int:
    """Proportional set size of the process's anonymous and shared-memory pages, in bytes:
    its heap, stacks and arenas, plus a fair share of PostgreSQL's shared buffers (RSS
    would count those once per backend). File-backed pages (Python, the venv's
    extensions) are left out: their share moves with every other process on the machine
    that maps the same files, which is noise, not this process's memory."""
    with open(f"/proc/{process.pid}/smaps_rollup") as rollup:  # gone meanwhile: OSError, the callers skip it
        fields = dict(line.split(":", 1) for line in rollup if line.startswith(("Pss_Anon:", "Pss_Shmem:")))
    if not fields:  # a kernel without the split: the whole PSS
        return process.memory_full_info().pss
    return sum(int(value.split()[0]) for value in fields.values()) * 1024


def _memory_by_part(stack) -> dict[str, float]:
    import psutil

    parts = {"Prefect server": 0, "engine (executor + facade)": 0, "PostgreSQL": 0}
    for process in stack.processes:
        part = "Prefect server" if process.name.startswith("prefect server") else "engine (executor + facade)"
        for member in process.group_members():
            with contextlib.suppress(psutil.Error, OSError):  # it may have ended since it was listed
                parts[part] += _memory(member)
    postmaster_pid = stack.postgres.pid if stack.postgres is not None else None
    if postmaster_pid:
        with contextlib.suppress(psutil.Error, OSError):
            postmaster = psutil.Process(postmaster_pid)
            for member in postmaster.children(recursive=True):
                with contextlib.suppress(psutil.Error, OSError):  # a backend that just ended
                    parts["PostgreSQL"] += _memory(member)
            parts["PostgreSQL"] += _memory(postmaster)
    return {part: round(value / 2**20, 1) for part, value in parts.items()}


def _count_final() -> tuple[int, int]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("ensure-refunds-async/ensure-refunds-async").id
        by = DeploymentFilter(id=DeploymentFilterId(any_=[deployment]))

        def count(*types):
            return client.count_flow_runs(deployment_filter=by, flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(types)))))

        return count(StateType.COMPLETED), count(StateType.FAILED, StateType.CRASHED)


def _supervise(stack, stop: threading.Event, log) -> None:
    while not stop.wait(0.5):
        stack.supervise(log=log)


def run(*, minutes: float = 30, rate: float = 2.0, orders: int = 100, sample_seconds: float = 60,
        warmup_seconds: float = 300, log=print) -> SoakFigures:
    from blocks import SandboxGateway
    from runtime.processes import free_port
    from runtime.stack import Stack, StackConfig

    token = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="om-soak-") as scratch:
        stack = Stack(StackConfig(data_dir=Path(scratch), prefect_port=free_port(), api_port=free_port(), token=token))
        try:
            stack.start(log=log)
            SandboxGateway().save("soak-sandbox", overwrite=True)
            order_ids = [order for order, _memo in _orders(stack.store_url, orders, paid=Decimal("100.00"), memo=None,
                                                           gateway_block="soak-sandbox", prefix="S")]
            figures = SoakFigures(minutes=minutes, rate=rate, started=0, completed=0, failed=0)
            stop = threading.Event()
            threading.Thread(target=_supervise, args=(stack, stop, log), daemon=True).start()
            began = time.monotonic()
            next_sample = began
            with httpx.Client(timeout=30, trust_env=False, headers={"Authorization": f"Bearer {token}"}) as client:
                n = 0
                while (now := time.monotonic()) - began < minutes * 60:
                    if now >= next_sample:
                        figures.samples.append({"t": round(now - began), **_memory_by_part(stack)})
                        if not figures.warm_index and now - began >= warmup_seconds:
                            figures.warm_index = len(figures.samples) - 1
                        log(f"soak t={now - began:.0f}s accepted={figures.started} pss={figures.samples[-1]}")
                        next_sample += sample_seconds
                    order_id = order_ids[n % len(order_ids)]
                    answer = client.post(f"{stack.facade_url}{API}/commerce/order-management/order-summaries/"
                                         f"{order_id}/async-actions/ensure-refunds-async", json={"excessFundsAmount": 0.01})
                    figures.started += answer.status_code == 201
                    n += 1
                    time.sleep(max(0.0, began + n / rate - time.monotonic()))
            time.sleep(10)
            figures.samples.append({"t": round(time.monotonic() - began), **_memory_by_part(stack)})
            figures.completed, figures.failed = _count_final()
            stop.set()
            return figures
        finally:
            stack.stop()
