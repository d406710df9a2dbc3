"""Where one operation's time goes: an ensure-refunds operation run in this process with
the warm executor's in-process engine under pyinstrument, on a scratch stack.

Writes the full call tree next to the figures (``profile.txt``) and reports the shares of
wall time spent waiting on Prefect's API, in the store's SQL, and everything else.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.operations import Results, _orders, _stack, machine

# Inclusive time of the first frame matching one of these (outermost wins).
CATEGORIES = {
    "Prefect API (HTTP)": ("httpx/_client.py", "send"),
    "store (SQL)": ("sqlalchemy/engine/base.py", "_execute_context"),
}


def _shares(frame, totals: dict[str, float]) -> None:
    for category, (file_part, function) in CATEGORIES.items():
        if file_part in (frame.file_path or "") and frame.function == function:
            totals[category] += frame.time
            return
    for child in frame.children:
        _shares(child, totals)


def _profile_runs(deployment_id, orders, out: Path) -> tuple[list[float], dict[str, list[float]]]:
    from pyinstrument import Profiler
    from prefect.client.orchestration import get_client

    from flows.ensure_refunds_async import ensure_refunds_async
    from runtime.executor import claims
    from runtime.executor.inprocess import run_flow_in_thread

    walls, shares = [], {category: [] for category in CATEGORIES}
    with get_client(sync_client=True) as client:
        for n, (order, memo) in enumerate(orders):
            run = client.create_flow_run_from_deployment(deployment_id, parameters={
                "order_summary_id": order, "ensure_refunds_input": {"creditMemoId": memo}})
            run = claims.claim(client, run)
            profiler = Profiler(interval=0.0005)
            started = time.perf_counter()
            with profiler:
                state = run_flow_in_thread(ensure_refunds_async, run)
            wall = time.perf_counter() - started
            assert state.is_completed(), state
            if n == 0:
                continue  # the first one warms imports and connections
            walls.append(wall)
            totals = dict.fromkeys(CATEGORIES, 0.0)
            _shares(profiler.last_session.root_frame(), totals)
            for category, seconds in totals.items():
                shares[category].append(seconds / profiler.last_session.duration)
            if n == len(orders) - 1:
                out.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    return walls, shares


def profile_one_operation(out: Path, *, operations: int = 5) -> Results:
    import os

    from blocks import SandboxGateway
    from flows.ensure_refunds_async import ensure_refunds_async
    from runtime.executor.inprocess import prepare_run_thread

    for schedule in ("OM_AUDIT_CRON", "OM_RESOLVE_CRON", "OM_WEBHOOK_CRON", "OM_EXPORT_CRON", "OM_SWEEP_CRON", "OM_RECONCILE_CRON"):
        os.environ[schedule] = ""
    results = Results(machine=machine())
    with tempfile.TemporaryDirectory(prefix="om-profile-") as scratch:
        stack = _stack("warm", Path(scratch))
        try:
            stack.start(log=lambda _m: None)
            SandboxGateway().save("bench-sandbox", overwrite=True)
            orders = _orders(stack.store_url, operations + 1)
            # its own deployment, in no work pool: the stack's executor leaves its runs alone
            deployment_id = ensure_refunds_async.to_deployment(name="profile").apply()
            # on a thread of its own, as in the executor: its Prefect client and settings
            # (prepare_run_thread) must not outlive this stack in the calling thread
            with ThreadPoolExecutor(1, initializer=prepare_run_thread) as thread:
                walls, shares = thread.submit(_profile_runs, deployment_id, orders, out).result()
        finally:
            stack.stop()
    results.add("profile: one operation in the executor (wall)", statistics.median(walls), "s",
                note="ensure-refunds, engine start to final state")
    for category, values in shares.items():
        results.add(f"profile: share waiting on {category}", statistics.median(values), "fraction")
    results.add("profile: share in everything else", 1 - sum(statistics.median(v) for v in shares.values()), "fraction",
                note=f"call tree: {out}")
    return results
