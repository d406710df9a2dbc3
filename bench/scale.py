"""Stock ``prefect.serve``, the engine's default and the scaled-out setting, side by side in
one run, at 1, 10, 50 and 200 concurrent callers; then how the default's figures grow with
the store (1k to 1M order summaries).

Settings (each a whole stack in a scratch directory, embedded PostgreSQL, no schedules):

* ``stock serve``: the facade beside stock ``prefect.serve`` (a process per flow run);
* ``default``: ``om up``'s default: one Prefect server process, the warm executor in the
  facade's process;
* ``scaled out``: ``om up --prefect-workers 2 --executors 2 --redis-url ...``: Prefect's API
  in two processes, its services apart, messaging on Redis, a second executor.

At each level, ``callers`` threads each accept ``max(1, 20 // callers)`` operations back to
back (ensure-refunds-async of a 10.00 credit memo through the facade, not waiting for
them), then the bench waits for every run to finish. Per level: accept p50/p95 (the
POST's wall time), create->Complete p50/p95 (from the run's own timestamps), completed
ops/s (operations over first accept to last end), errors (a non-2xx accept or a run not
Completed), CPU seconds per operation of each process of the stack and of PostgreSQL
(by database), and what Prefect's database took per operation (commits, rows written).
The create_flow_run floor (Prefect's own call, for a run nobody executes) is measured at
1 and 5 callers beside the accepts, as in bench/operations.py.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

KEY = "scale"
SETTINGS = ("stock serve", "default", "scaled out")
REDIS_URL = "redis://127.0.0.1:6379/10"  # the scaled-out bench's own: flushed before and after


@dataclass
class Level:
    """One setting at one number of callers."""

    setting: str
    callers: int
    operations: int
    accept_p50: float
    accept_p95: float
    complete_p50: float
    complete_p95: float
    ops_per_second: float
    errors: int
    cpu_per_op: dict[str, float]
    prefect_commits_per_op: float
    prefect_rows_per_op: float
    store_size: int | None = None  # order summaries in the store beforehand (the growth rows)
    error_samples: list[str] = field(default_factory=list)  # what the first few errors were


@dataclass
class ScaleResults:
    machine: dict
    levels: list[Level] = field(default_factory=list)
    floors: dict[str, dict[str, float]] = field(default_factory=dict)  # setting -> figure -> seconds

    def as_json(self) -> dict:
        from dataclasses import asdict

        return {"machine": self.machine, "floors": self.floors,
                "levels": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(level).items()}
                           for level in self.levels]}

    def level(self, setting: str, callers: int, store_size: int | None = None) -> Level:
        return next(x for x in self.levels if (x.setting, x.callers, x.store_size) == (setting, callers, store_size))


def _config(setting: str, scratch: Path):
    import secrets

    from runtime.processes import free_port
    from runtime.stack import StackConfig

    common = {"data_dir": scratch, "prefect_port": free_port(), "api_port": free_port(), "token": secrets.token_urlsafe(16)}
    if setting == "stock serve":
        return StackConfig(executor="serve", **common)
    if setting == "default":
        return StackConfig(**common)
    return StackConfig(prefect_workers=2, executors=2, redis_url=REDIS_URL, **common)


def _flush_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()


def _pids(stack) -> dict[str, int]:
    """Each child of the stack by name (its CPU counts its live children: uvicorn's workers,
    served flow-run processes), and the postmaster."""
    import psutil

    found = {process.name.split(" :")[0]: process.pid for process in stack.processes}  # "prefect api :4200"
    pg_dir = str(stack.config.data_dir / "pg")
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "postgres" in cmdline and pg_dir in cmdline and " -D " in f" {cmdline} ":
            found["postmaster"] = proc.info["pid"]
    return found


def _snapshot(pids: dict[str, int], prefect_db) -> dict[str, float]:
    from bench.operations import DATABASES, _group_cpu, _postgres_cpu

    found = {f"CPU {name}": _group_cpu(pid) for name, pid in pids.items() if name != "postmaster"}
    for database, seconds in _postgres_cpu(pids["postmaster"]).items():
        found[f"CPU PostgreSQL, {DATABASES[database]}"] = seconds
    counts = prefect_db.counts()
    found["commits"] = counts.pop("transactions")
    found["rows"] = sum(counts.values())
    return found


def _level(bench, setting: str, callers: int, pids: dict[str, int], prefect_db, *, per_level: int,
           store_size: int | None = None) -> Level:
    from bench.operations import percentile

    rounds = max(1, per_level // callers)
    time.sleep(1)  # the last level's logs and events land first
    before = _snapshot(pids, prefect_db)
    accepts: list[float] = []
    ids, errors, samples = [], 0, []

    def caller(_):
        made = []
        for _ in range(rounds):
            try:
                made.append(bench.accept())
            except Exception as exc:  # noqa: BLE001 - an accept that failed is an error of the level, counted
                samples.append(f"accept: {type(exc).__name__}: {exc}"[:400])
                made.append(None)
        return made

    started = datetime.now(UTC)
    with ThreadPoolExecutor(callers) as pool:
        for made in pool.map(caller, range(callers)):
            for answer in made:
                if answer is None:
                    errors += 1
                else:
                    accepts.append(answer[0])
                    ids.append(answer[1])
    runs = bench.finished(ids)
    completed = [r for r in runs if r.state.is_completed()]
    errors += len(ids) - len(completed)
    samples += [f"run {r.id}: {r.state.type.value}: {r.state.message}"[:400] for r in runs if not r.state.is_completed()]
    time.sleep(1.5)
    after = _snapshot(pids, prefect_db)
    n = len(ids) or 1
    latencies = [(r.end_time - r.created).total_seconds() for r in completed] or [0.0]
    end = max((r.end_time for r in completed), default=datetime.now(UTC))
    return Level(
        setting=setting, callers=callers, operations=len(ids),
        accept_p50=statistics.median(accepts or [0.0]), accept_p95=percentile(accepts or [0.0], 0.95),
        complete_p50=statistics.median(latencies), complete_p95=percentile(latencies, 0.95),
        ops_per_second=len(completed) / max((end - started).total_seconds(), 1e-9), errors=errors,
        cpu_per_op={name.removeprefix("CPU "): (after[name] - before[name]) / n for name in after
                    if name.startswith("CPU ")},
        prefect_commits_per_op=(after["commits"] - before["commits"]) / n,
        prefect_rows_per_op=(after["rows"] - before["rows"]) / n, store_size=store_size, error_samples=samples[:5],
    )


def _floors(bench, samples: int) -> dict[str, float]:
    """create_flow_run next to accept, alternating, at 1 and at 5 callers (bench/operations.py)."""
    from bench.operations import floors_and_accepts

    floors_1, accept_1, floors_5, accept_5, ids = floors_and_accepts(bench, samples)
    bench.finished(ids)
    return {"create_flow_run p50, 1 caller": statistics.median(floors_1), "accept p50, 1 caller": statistics.median(accept_1),
            "create_flow_run p50, 5 callers": statistics.median(floors_5),
            "accept p50, 5 callers": statistics.median(accept_5)}


class _Bench:
    """bench.operations.Bench, with a wait that reports what did not complete instead of failing."""

    def __init__(self, stack, orders):
        from bench.operations import Bench

        self.inner = Bench(stack, orders)
        self.inner.http.close()
        # a connection per caller: httpx's default pool (100) would queue the 200 callers in the client
        self.inner.http = httpx.Client(base_url=self.inner.http.base_url, headers=self.inner.http.headers, timeout=120,
                                       limits=httpx.Limits(max_connections=400, max_keepalive_connections=400))
        self.accept, self.create_floor = self.inner.accept, self.inner.create_floor

    def finished(self, ids: list, timeout: float = 1800) -> list:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        try:
            return self.inner.wait_all(ids, timeout=timeout)
        except AssertionError:  # some ended otherwise than Completed: the level counts them as errors
            return self.inner.prefect.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)),
                                                     limit=len(ids))


def measure_setting(results: ScaleResults, setting: str, *, callers: tuple[int, ...], per_level: int, samples: int,
                    sizes: tuple[int, ...] = (), growth_callers: tuple[int, ...] = ()) -> None:
    """One setting's stack: its floors and levels; then, for each of ``sizes``, the store
    grown to that many order summaries and ``growth_callers`` levels again."""
    from bench.operations import PrefectDatabase, _orders, without_schedules
    from blocks import SandboxGateway
    from runtime.stack import Stack

    without_schedules()
    if setting == "scaled out":
        _flush_redis()
    def operations(levels: tuple[int, ...]) -> int:
        return sum(c * max(1, per_level // c) for c in levels)

    needed = 2 * samples + operations(callers) + operations(growth_callers) * len(sizes) + 5
    with tempfile.TemporaryDirectory(prefix="om-bench-scale-") as scratch:
        stack = Stack(_config(setting, Path(scratch)))
        try:
            stack.start(log=lambda _m: None)
            from api.operations import deployment_id

            deployment_id.cache_clear()  # a previous stack's deployment ids
            SandboxGateway().save("bench-sandbox", overwrite=True)
            bench = _Bench(stack, _orders(stack.store_url, needed))
            prefect_db = PrefectDatabase(stack.postgres.conninfo("prefect"))
            bench.finished([bench.accept()[1]])  # warm the first-call paths
            results.floors[setting] = _floors(bench, samples)
            pids = _pids(stack)
            for c in callers:
                results.levels.append(_level(bench, setting, c, pids, prefect_db, per_level=per_level))
            grown = 0
            for size in sizes:
                from bench.store_scale import grow

                grow(stack.postgres.conninfo("orders"), grown, size)
                grown = size
                for c in growth_callers:
                    results.levels.append(_level(bench, setting, c, pids, prefect_db, per_level=per_level,
                                                 store_size=size))
        finally:
            stack.stop()
            if setting == "scaled out":
                _flush_redis()


def run(*, settings: tuple[str, ...] = SETTINGS, callers: tuple[int, ...] = (1, 10, 50, 200), per_level: int = 20,
        samples: int = 20, sizes: tuple[int, ...] = (1_000, 100_000, 1_000_000),
        growth_callers: tuple[int, ...] = (10,)) -> ScaleResults:
    """Every setting at every level; the store growth with the default setting only."""
    from bench.operations import machine

    results = ScaleResults(machine=machine())
    for setting in settings:
        grows = setting == "default"
        measure_setting(results, setting, callers=callers, per_level=per_level, samples=samples,
                        sizes=sizes if grows else (), growth_callers=growth_callers if grows else ())
    return results


def print_table(results: ScaleResults) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Scale: settings side by side ({results.machine['cpus']} cores)")
    for column in ("setting", "store", "callers", "ops", "accept p50/p95 s", "create->Complete p50/p95 s", "ops/s",
                   "errors", "Prefect commits/op", "Prefect rows/op", "CPU s/op (largest parts)"):
        table.add_column(column)
    for x in results.levels:
        top = sorted(x.cpu_per_op.items(), key=lambda item: -item[1])[:3]
        table.add_row(x.setting, "" if x.store_size is None else f"{x.store_size:,}", str(x.callers), str(x.operations),
                      f"{x.accept_p50:.3f} / {x.accept_p95:.3f}", f"{x.complete_p50:.3f} / {x.complete_p95:.3f}",
                      f"{x.ops_per_second:.2f}", str(x.errors), f"{x.prefect_commits_per_op:.1f}",
                      f"{x.prefect_rows_per_op:.1f}", ", ".join(f"{name} {s:.3f}" for name, s in top))
    Console(width=220).print(table)
    for setting, floors in results.floors.items():
        Console().print(f"{setting}: " + ", ".join(f"{k} {v:.4f} s" for k, v in floors.items()))
