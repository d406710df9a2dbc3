"""Background-operation speed on the embedded default, next to floors measured in the same run.

Starts the whole stack (embedded PostgreSQL, Prefect server, served deployments, REST
facade) in a scratch directory, sets up orders with a credit memo each, then measures:

* accept latency: POST ensure-refunds-async -> backgroundOperationId, p50/p99, at 1 and
  5 concurrent callers; floor: Prefect's own create-flow-run call for the same deployment;
* create -> Complete latency of one operation at a time (median);
* completed operations per second with N operations started at once, and the CPU seconds
  per operation of each part (Prefect server, executor, facade, PostgreSQL) at the highest N.

Every figure is the median over ``repeats``. The executor under test is whatever
``runtime.serve`` runs (today: stock ``prefect.serve``, with its poll at 1 s instead of 10 s).
"""

from __future__ import annotations

import secrets
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import httpx

DEPLOYMENT = "ensure-refunds-async/ensure-refunds-async"
FINAL = {"Complete", "Error", "Canceled"}


@dataclass
class Results:
    machine: dict
    figures: dict[str, dict] = field(default_factory=dict)

    def add(self, name: str, value: float, unit: str, floor: float | None = None, note: str = "") -> None:
        self.figures[name] = {"value": round(value, 4), "unit": unit, "floor": None if floor is None else round(floor, 4),
                              "note": note}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine() -> dict:
    import os
    import platform

    import psutil

    return {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2 ** 30, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process and of the children it has reaped (served flow runs, PostgreSQL backends)."""
    import psutil

    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system + t.children_user + t.children_system


def _process_groups(stack) -> dict[str, int]:
    """The root pid of each part of the stack whose CPU is counted."""
    import psutil

    by_name = {p.name.split(" :")[0]: p.pid for p in stack.processes}
    groups = {"Prefect server": by_name.get("prefect server"), "executor (runtime.serve)": by_name.get("served deployments"),
              "REST facade": by_name.get("REST facade")}
    pg_dir = str(stack.config.data_dir / "pg")
    for proc in psutil.process_iter(["pid", "cmdline", "ppid"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "postgres" in cmdline and pg_dir in cmdline and " -D " in f" {cmdline} ":
            groups["database (PostgreSQL)"] = proc.info["pid"]
    return {name: pid for name, pid in groups.items() if pid}


def _orders(store_url: str, count: int) -> list[tuple[str, str]]:
    """``count`` orders, each paid 50.00 with a 10.00 credit memo: (order id, memo id)."""
    from db.engine import session_scope
    from db.models import (
        CreditMemoCreate, OrderPaymentSummaryCreate, OrderSummaryCreate, PaymentCreate, PaymentGatewayCreate,
    )
    from db.sobjects import (
        create_credit_memo, create_order_payment_summary, create_order_summary, create_payment, create_payment_gateway,
    )

    made = []
    with session_scope(store_url) as s:
        gateway = create_payment_gateway(session=s, obj_in=PaymentGatewayCreate(
            payment_gateway_name="bench sandbox", merchant_credential_name="bench-sandbox"))
        s.flush()
        for n in range(count):
            order = create_order_summary(session=s, obj_in=OrderSummaryCreate(order_number=f"B-{n}", currency_iso_code="USD"))
            s.flush()
            ops = create_order_payment_summary(session=s, obj_in=OrderPaymentSummaryCreate(order_summary_id=order.id))
            s.flush()
            create_payment(session=s, obj_in=PaymentCreate(order_payment_summary_id=ops.id, payment_gateway_id=gateway.id,
                                                           amount=Decimal("50.00")))
            memo = create_credit_memo(session=s, obj_in=CreditMemoCreate(order_summary_id=order.id,
                                                                         total_amount=Decimal("10.00")))
            s.flush()
            made.append((order.id, memo.id))
    return made


class Bench:
    def __init__(self, stack, orders: list[tuple[str, str]]):
        self.stack, self.orders = stack, list(orders)
        self.http = httpx.Client(base_url=f"{stack.facade_url}/services/data/v60.0",
                                 headers={"Authorization": f"Bearer {stack.config.token}"}, timeout=60)

    def take(self) -> tuple[str, str]:
        return self.orders.pop()

    def accept(self) -> tuple[float, str]:
        order, memo = self.take()
        started = time.perf_counter()
        answer = self.http.post(f"/commerce/order-management/order-summaries/{order}/async-actions/ensure-refunds-async",
                                json={"creditMemoId": memo})
        elapsed = time.perf_counter() - started
        answer.raise_for_status()
        return elapsed, answer.json()["backgroundOperationId"]

    def wait(self, operation_id: str, timeout: float = 300) -> tuple[float, str]:
        from prefect.client.orchestration import get_client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.http.get(f"/sobjects/BackgroundOperation/{operation_id}").json()["Status"]
            if status in FINAL:
                with get_client(sync_client=True) as client:
                    run = client.read_flow_run(UUID(operation_id))
                return (run.end_time - run.created).total_seconds(), status
            time.sleep(0.05)
        raise TimeoutError(f"operation {operation_id} not finished after {timeout}s")

    def create_floor(self) -> float:
        """Prefect's own create-flow-run for the deployment (what accepting costs at least)."""
        from prefect.client.orchestration import get_client

        from api.operations import deployment_id

        with get_client(sync_client=True) as client:
            started = time.perf_counter()
            run = client.create_flow_run_from_deployment(deployment_id(DEPLOYMENT), parameters={
                "order_summary_id": "1OsAAAAAAAAAAAAAAA", "ensure_refunds_input": {"excessFundsAmount": "0.01"}})
            elapsed = time.perf_counter() - started
            client.set_flow_run_state(run.id, _cancelled(), force=True)  # never executed
        return elapsed


def _cancelled():
    from prefect.states import Cancelled

    return Cancelled(message="benchmark floor: created to time the call, never run")


def run(*, repeats: int = 3, samples: int = 20, concurrent: tuple[int, ...] = (1, 10), keep: Path | None = None) -> Results:
    from blocks import SandboxGateway
    from runtime.processes import free_port
    from runtime.stack import Stack, StackConfig

    import os

    for schedule in ("OM_AUDIT_CRON", "OM_RESOLVE_CRON", "OM_WEBHOOK_CRON", "OM_EXPORT_CRON"):
        os.environ[schedule] = ""  # no scheduled runs competing with the measured ones
    results = Results(machine=machine())
    needed = repeats * (2 * samples + 1 + sum(concurrent)) + 10
    with tempfile.TemporaryDirectory(prefix="om-bench-") as scratch:
        stack = Stack(StackConfig(data_dir=keep or Path(scratch), prefect_port=free_port(), api_port=free_port(),
                                  token=secrets.token_urlsafe(16)))
        try:
            stack.start(log=lambda _m: None)
            SandboxGateway().save("bench-sandbox", overwrite=True)
            bench = Bench(stack, _orders(stack.store_url, needed))
            bench.accept()  # warm the facade's first-call path
            floors, accept_1, accept_5, latency = [], [], [], []
            groups = _process_groups(stack)
            cpu: dict[str, list[float]] = {name: [] for name in groups}
            throughput: dict[int, list[float]] = {c: [] for c in concurrent}
            for _ in range(repeats):
                floors += [bench.create_floor() for _ in range(samples)]
                accepted = [bench.accept() for _ in range(samples)]
                with ThreadPoolExecutor(5) as pool:
                    accepted_5 = list(pool.map(lambda _: bench.accept(), range(samples)))
                accept_1 += [elapsed for elapsed, _ in accepted]
                accept_5 += [elapsed for elapsed, _ in accepted_5]
                for _, operation_id in accepted + accepted_5:  # drain: later figures start from an idle executor
                    bench.wait(operation_id)
                latency.append(bench.wait(bench.accept()[1])[0])
                for c in concurrent:
                    cpu_before = {name: _cpu_seconds(pid) for name, pid in groups.items()}
                    started = time.perf_counter()
                    with ThreadPoolExecutor(c) as pool:
                        ids = [op for _, op in pool.map(lambda _: bench.accept(), range(c))]
                        done = list(pool.map(bench.wait, ids))
                    assert all(status == "Complete" for _, status in done), done
                    throughput[c].append(c / (time.perf_counter() - started))
                    if c == max(concurrent):
                        for name, pid in groups.items():
                            cpu[name].append((_cpu_seconds(pid) - cpu_before[name]) / c)
            results.add("create_flow_run p50", statistics.median(floors), "s", note="Prefect API floor")
            results.add("accept p50 (1 caller)", statistics.median(accept_1), "s", floor=statistics.median(floors))
            results.add("accept p99 (1 caller)", percentile(accept_1, 0.99), "s", floor=percentile(floors, 0.99))
            results.add("accept p50 (5 callers)", statistics.median(accept_5), "s", floor=statistics.median(floors))
            results.add("accept p99 (5 callers)", percentile(accept_5, 0.99), "s")
            results.add("create->Complete (1 at a time)", statistics.median(latency), "s", note="executor: runtime.serve")
            for c, rates in throughput.items():
                results.add(f"completed ops/s ({c} concurrent)", statistics.median(rates), "ops/s")
            for name, seconds in cpu.items():
                results.add(f"CPU s/op: {name}", statistics.median(seconds), "s",
                            note=f"at {max(concurrent)} concurrent")
        finally:
            stack.stop()
    return results
