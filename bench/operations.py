"""Background-operation speed on the embedded default, warm executor next to stock
``prefect.serve``, each measured in the same run as its floors.

For each executor it starts the whole stack (embedded PostgreSQL, Prefect server,
deployments, REST facade) in a scratch directory with no schedules, sets up orders with a
credit memo each, then measures:

* accept latency: POST ensure-refunds-async -> backgroundOperationId, p50/p99, at 1 and
  5 concurrent callers; floor: Prefect's own create-flow-run call for the same deployment;
* create -> Complete latency of one operation at a time (median of several);
* completed operations per second with N operations started at once;
* per operation, at the highest N: CPU seconds of each part (Prefect server, executor,
  facade, PostgreSQL), and what Prefect's database took (events, logs, state rows,
  committed transactions).

The bench waits for completions by counting unfinished runs every 0.25 s (one read), and
takes every timestamp from the runs themselves, so its own load is a small constant.
Every figure is the median over ``repeats``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import httpx

DEPLOYMENT = "ensure-refunds-async/ensure-refunds-async"
LABELS = {"warm": "warm executor", "warm-separate": "warm executor, own process", "serve": "stock serve"}
DATABASES = {"orders": "store", "prefect": "Prefect's database", "shared": "shared processes"}


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


def _group_cpu(pid: int) -> float:
    """CPU of a process, its live children and the children it has reaped."""
    import psutil

    total = _cpu_seconds(pid)
    with contextlib.suppress(psutil.Error):  # the process or a child may have just exited
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                t = child.cpu_times()
                total += t.user + t.system
    return total


def _postgres_cpu(postmaster_pid: int) -> dict[str, float]:
    """CPU of PostgreSQL's live backends per database (their process title names it), and
    of everything else (postmaster, background writers, reaped backends) as ``shared``."""
    import psutil

    found = {"orders": 0.0, "prefect": 0.0, "shared": _cpu_seconds(postmaster_pid)}
    try:
        children = psutil.Process(postmaster_pid).children()
    except psutil.Error:
        return found
    for child in children:
        try:
            title, t = " ".join(child.cmdline()), child.cpu_times()
        except psutil.Error:
            continue
        words = title.split()
        database = words[2] if len(words) > 2 and words[0] == "postgres:" else None
        found[database if database in ("orders", "prefect") else "shared"] += t.user + t.system
    return found


def _process_groups(stack) -> dict[str, int]:
    """The root pid of each part of the stack whose CPU is counted."""
    import psutil

    by_name = {p.name.split(" :")[0]: p.pid for p in stack.processes}
    groups = {"Prefect server": by_name.get("prefect server"),
              "executor (warm, with the idle facade)": by_name.get("engine"),
              "executor (warm)": by_name.get("executor"),
              "executor (prefect.serve + flow-run processes)": by_name.get("served deployments"),
              "REST facade": by_name.get("REST facade")}
    pg_dir = str(stack.config.data_dir / "pg")
    for proc in psutil.process_iter(["pid", "cmdline", "ppid"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "postgres" in cmdline and pg_dir in cmdline and " -D " in f" {cmdline} ":
            groups["postmaster"] = proc.info["pid"]
    return {name: pid for name, pid in groups.items() if pid}


def _orders(store_url: str, count: int, *, paid: Decimal = Decimal("50.00"), memo: Decimal | None = Decimal("10.00"),
            gateway_block: str = "bench-sandbox", prefix: str = "B") -> list[tuple[str, str | None]]:
    """``count`` orders, each paid ``paid`` (50.00) with a ``memo`` credit memo (10.00; None:
    no memo) on the sandbox block ``gateway_block``: (order id, memo id)."""
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
            payment_gateway_name=gateway_block.replace("-", " "), merchant_credential_name=gateway_block))
        s.flush()
        for n in range(count):
            order = create_order_summary(session=s, obj_in=OrderSummaryCreate(order_number=f"{prefix}-{n}",
                                                                              currency_iso_code="USD"))
            s.flush()
            ops = create_order_payment_summary(session=s, obj_in=OrderPaymentSummaryCreate(order_summary_id=order.id))
            s.flush()
            create_payment(session=s, obj_in=PaymentCreate(order_payment_summary_id=ops.id, payment_gateway_id=gateway.id,
                                                           amount=paid))
            memo_id = None if memo is None else create_credit_memo(session=s, obj_in=CreditMemoCreate(
                reference_entity_id=order.id, total_amount=memo)).id
            s.flush()
            made.append((order.id, memo_id))
    return made


class PrefectDatabase:
    """Counts in Prefect's own database: what one operation costs the server."""

    QUERIES = {
        "events": "SELECT count(*) FROM events",
        "logs": "SELECT count(*) FROM log",
        "flow run states": "SELECT count(*) FROM flow_run_state",
        "task run states": "SELECT count(*) FROM task_run_state",
    }

    def __init__(self, url: str):
        self.url = url

    def counts(self) -> dict[str, int]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            found = {name: conn.execute(sql).fetchone()[0] for name, sql in self.QUERIES.items()}
            found["transactions"] = conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]
        return found


class Bench:
    def __init__(self, stack, orders: list[tuple[str, str]]):
        from prefect.client.orchestration import get_client

        self.stack, self.orders = stack, list(orders)
        self.http = httpx.Client(base_url=f"{stack.facade_url}/services/data/v60.0",
                                 headers={"Authorization": f"Bearer {stack.config.token}"}, timeout=120)
        self.prefect = get_client(sync_client=True)
        self.prefect.__enter__()

    def take(self) -> tuple[str, str]:
        return self.orders.pop()

    def accept(self) -> tuple[float, UUID]:
        order, memo = self.take()
        started = time.perf_counter()
        answer = self.http.post(f"/commerce/order-management/order-summaries/{order}/async-actions/ensure-refunds-async",
                                json={"creditMemoId": memo})
        elapsed = time.perf_counter() - started
        answer.raise_for_status()
        return elapsed, UUID(answer.json()["backgroundOperationId"])

    def wait_all(self, ids: list[UUID], timeout: float = 900) -> list:
        """Wait until every run is final (one count per 0.25 s); the runs, all Completed."""
        from prefect.client.schemas.filters import (
            FlowRunFilter, FlowRunFilterId, FlowRunFilterState, FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        unfinished = FlowRunFilter(id=FlowRunFilterId(any_=ids), state=FlowRunFilterState(
            type=FlowRunFilterStateType(not_any_=[StateType.COMPLETED, StateType.FAILED, StateType.CRASHED,
                                                  StateType.CANCELLED])))
        deadline = time.monotonic() + timeout
        while self.prefect.count_flow_runs(flow_run_filter=unfinished):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids)} operations not finished after {timeout}s")
            time.sleep(0.25)
        runs = self.prefect.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids))
        bad = [(r.id, r.state.type.value) for r in runs if r.state.type != StateType.COMPLETED]
        assert not bad, f"operations did not complete: {bad}"
        return runs

    def create_direct(self) -> UUID:
        """An operation created through Prefect's API, as the UI or an automation would."""
        from api.operations import deployment_id

        order, memo = self.take()
        return self.prefect.create_flow_run_from_deployment(deployment_id(DEPLOYMENT), parameters={
            "order_summary_id": order, "ensure_refunds_input": {"creditMemoId": memo}}).id

    def create_floor(self) -> float:
        """Prefect's own create-flow-run for the deployment (what accepting costs at least)."""
        from api.operations import deployment_id

        from datetime import timedelta

        from prefect.states import Scheduled

        not_due = Scheduled(scheduled_time=datetime.now(UTC) + timedelta(days=1))  # no executor takes it
        started = time.perf_counter()
        run = self.prefect.create_flow_run_from_deployment(deployment_id(DEPLOYMENT), parameters={
            "order_summary_id": "1OsAAAAAAAAAAAAAAA", "ensure_refunds_input": {"excessFundsAmount": 0.01}},
            state=not_due)
        elapsed = time.perf_counter() - started
        self.prefect.set_flow_run_state(run.id, _cancelled(), force=True)  # never executed
        return elapsed


def floors_and_accepts(bench, samples: int) -> tuple[list[float], list[float], list[float], list[float], list[UUID]]:
    """create_flow_run and accept alternating, ``samples`` of each at 1 caller, then at 5:
    (floors at 1, accepts at 1, floors at 5, accepts at 5, the accepted operations)."""
    floors_1, accept_1, floors_5, accept_5, accepted = [], [], [], [], []
    for _ in range(samples):
        floors_1.append(bench.create_floor())
        elapsed, operation = bench.accept()
        accept_1.append(elapsed)
        accepted.append(operation)

    def caller(_):
        return bench.create_floor(), bench.accept()

    with ThreadPoolExecutor(5) as pool:
        for floor, (elapsed, operation) in pool.map(caller, range(samples)):
            floors_5.append(floor)
            accept_5.append(elapsed)
            accepted.append(operation)
    return floors_1, accept_1, floors_5, accept_5, accepted


def _cancelled():
    from prefect.states import Cancelled

    return Cancelled(message="benchmark floor: created to time the call, never run")


def _stack(executor: str, scratch: Path):
    from runtime.processes import free_port
    from runtime.stack import Stack, StackConfig

    return Stack(StackConfig(data_dir=scratch, prefect_port=free_port(), api_port=free_port(),
                             token=secrets.token_urlsafe(16), executor=executor))


SCHEDULES = ("OM_AUDIT_CRON", "OM_RESOLVE_CRON", "OM_WEBHOOK_CRON", "OM_EXPORT_CRON", "OM_SWEEP_CRON", "OM_RECONCILE_CRON")


def without_schedules() -> None:
    """No scheduled runs competing with the measured ones (in the stacks started from here on)."""
    for schedule in SCHEDULES:
        os.environ[schedule] = ""


def measure(results: Results, *, executor: str, repeats: int, samples: int, concurrent: tuple[int, ...]) -> None:
    """Every figure of one executor, named ``<figure> [<executor label>]``."""
    from blocks import SandboxGateway

    without_schedules()
    label = LABELS[executor]
    latency_samples = max(3, samples // 2)
    needed = repeats * (2 * samples + latency_samples + 2 * sum(concurrent)) + 10
    with tempfile.TemporaryDirectory(prefix=f"om-bench-{executor}-") as scratch:
        stack = _stack(executor, Path(scratch))
        try:
            stack.start(log=lambda _m: None)
            from api.operations import deployment_id

            deployment_id.cache_clear()  # a previous stack's deployment ids
            SandboxGateway().save("bench-sandbox", overwrite=True)
            bench = Bench(stack, _orders(stack.store_url, needed))
            prefect_db = PrefectDatabase(stack.postgres.conninfo("prefect"))
            bench.wait_all([bench.accept()[1]])  # warm the first-call paths
            floors, floors_5, accept_1, accept_5, latency, accepted = [], [], [], [], [], []
            groups = _process_groups(stack)
            cost: dict[str, list[float]] = {}
            throughput: dict[int, list[float]] = {c: [] for c in concurrent}
            biggest = max(concurrent)

            def snapshot() -> dict[str, float]:
                found = {f"CPU s/op: {name}": _group_cpu(pid) for name, pid in groups.items() if name != "postmaster"}
                for database, seconds in _postgres_cpu(groups["postmaster"]).items():
                    found[f"CPU s/op: PostgreSQL, {DATABASES[database]}"] = seconds
                found.update({f"Prefect DB per op: {name}": n for name, n in prefect_db.counts().items()})
                return found

            def batch(start, c: int, *, costed: bool) -> float:
                """``c`` operations started at once; completed ops/s, and their cost if ``costed``."""
                time.sleep(1)  # let the last batch's logs and events land
                before = snapshot() if costed else {}
                started = datetime.now(UTC)
                with ThreadPoolExecutor(min(c, 16)) as pool:
                    ids = list(pool.map(lambda _: start(), range(c)))
                runs = bench.wait_all(ids)
                rate = c / (max(r.end_time for r in runs) - started).total_seconds()
                if costed:
                    time.sleep(1.5)
                    after = snapshot()
                    for name in after:
                        cost.setdefault(name, []).append((after[name] - before[name]) / c)
                return rate

            for _ in range(repeats):
                # Floor and accept alternate, so both meet the same load (the runs just accepted
                # are executing meanwhile); floors are created Cancelled and never run.
                sampled = floors_and_accepts(bench, samples)
                for into, values in zip((floors, accept_1, floors_5, accept_5, accepted), sampled, strict=True):
                    into += values
                bench.wait_all(accepted)  # later figures start from an idle executor
                accepted.clear()
                for _ in range(latency_samples):
                    (run,) = bench.wait_all([bench.accept()[1]])
                    latency.append((run.end_time - run.created).total_seconds())
                for c in concurrent:
                    # stock serve's facade is its own process: its biggest batch is costed as it runs
                    throughput[c].append(batch(lambda: bench.accept()[1], c, costed=executor != "warm" and c == biggest))
                if executor == "warm":  # the facade shares the executor's process: cost a batch it does not serve
                    batch(bench.create_direct, biggest, costed=True)
            results.add(f"create_flow_run p50 [{label}]", statistics.median(floors), "s", note="Prefect API floor")
            results.add(f"accept p50, 1 caller [{label}]", statistics.median(accept_1), "s", floor=statistics.median(floors))
            results.add(f"accept p99, 1 caller [{label}]", percentile(accept_1, 0.99), "s", floor=percentile(floors, 0.99))
            results.add(f"accept p50, 5 callers [{label}]", statistics.median(accept_5), "s", floor=statistics.median(floors_5))
            results.add(f"accept p99, 5 callers [{label}]", percentile(accept_5, 0.99), "s", floor=percentile(floors_5, 0.99))
            results.add(f"create->Complete p50, 1 at a time [{label}]", statistics.median(latency), "s",
                        note=f"{len(latency)} operations")
            for c, rates in throughput.items():
                results.add(f"completed ops/s, {c} concurrent [{label}]", statistics.median(rates), "ops/s")
            how = "created through Prefect's API" if executor == "warm" else "created through the facade"  # noqa: E501
            for name, per_op in cost.items():
                unit = "s" if name.startswith("CPU") else "commits" if name.endswith("transactions") else "rows"
                results.add(f"{name} [{label}]", statistics.median(per_op), unit, note=f"{biggest} at once, {how}")
        finally:
            stack.stop()


def run(*, repeats: int = 3, samples: int = 20, concurrent: tuple[int, ...] = (1, 10, 50),
        executors: tuple[str, ...] = ("warm", "serve")) -> Results:
    results = Results(machine=machine())
    for executor in executors:
        measure(results, executor=executor, repeats=repeats, samples=samples, concurrent=concurrent)
    if set(executors) == {"warm", "serve"}:
        for c in concurrent:
            warm = results.figures[f"completed ops/s, {c} concurrent [warm executor]"]["value"]
            stock = results.figures[f"completed ops/s, {c} concurrent [stock serve]"]["value"]
            results.add(f"speed-up, ops/s at {c} concurrent (warm / stock serve)", warm / stock, "x")
        warm = results.figures["create->Complete p50, 1 at a time [warm executor]"]["value"]
        stock = results.figures["create->Complete p50, 1 at a time [stock serve]"]["value"]
        results.add("speed-up, create->Complete (stock serve / warm)", stock / warm, "x")
    return results
