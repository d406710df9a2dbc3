"""Batch sweep speed: the sweep-credit-memos flow refunding N credit memos in one flow run,
next to a floor of the same database writes made by a plain SQLAlchemy loop.

Starts an embedded PostgreSQL in a scratch directory (the store, migrated with Alembic,
and a Prefect server's database) and that Prefect server. For each size N and repeat,
the store is emptied and loaded in bulk (Core inserts) with N orders, each paid 50.00 by
one card through the sandbox gateway (no block: it approves everything) and carrying a
10.00 credit memo; then, each on freshly loaded data:

* sweep: ``flows.sweep_credit_memos`` called in this process with its defaults (batches
  of 200, 4 gateway calls in flight), one flow run and one task run, without Prefect's
  per-run heartbeat thread (as the project's executor runs flows); the clock stops once
  its om.refund.* events (two per refund) have been sent to the Prefect server;
* floor: the rows the sweep writes, by a loop of Core statements in the same
  transactions and with no reads, locks, checks, ORM or Prefect: per batch, one
  transaction inserting each refund (Pending), its gateway log row and RefundCreated
  event and updating its payment summary, payment and credit memo; each refund's sandbox
  booking in its own transaction, as the gateway commits it (one at a time); per batch,
  one transaction updating each refund, its log row, payment summary and payment and
  inserting its RefundUpdated event.

Each measurement starts once the Prefect server and PostgreSQL are idle (the server
ingests the last sweep's events after the clock stops). Each figure is the median over
the repeats; the first repeat of each size also checks the ledger invariants after the
sweep and after the floor (the floor writes a valid ledger too).
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import psutil

from bench.operations import Results, machine

PAID, MEMO = Decimal("50.00"), Decimal("10.00")
BATCH_SIZE = 200


@dataclass(frozen=True, slots=True)
class LoadedOrder:
    order: str
    summary: str
    payment: str
    memo: str


def _tables():
    from db.models import (
        CreditMemo, OrderPaymentSummary, OrderSummary, Payment, PaymentGateway, PaymentGatewayLog, Refund, RefundEvent,
    )
    from gateways.sandbox_ledger import SandboxGatewayRefund

    return {model.__name__: model.__table__ for model in (
        PaymentGateway, OrderSummary, OrderPaymentSummary, Payment, CreditMemo, Refund, PaymentGatewayLog, RefundEvent,
        SandboxGatewayRefund)}


def reset(store_url: str) -> None:
    """Empty every table of the store, and the sandbox gateway's books."""
    from sqlmodel import SQLModel

    from db.engine import get_engine
    from gateways.sandbox_ledger import metadata as sandbox_books

    _tables()  # imports the models: the metadata holds every table
    names = ", ".join(t.name for t in [*SQLModel.metadata.sorted_tables, *sandbox_books.sorted_tables])
    with get_engine(store_url).begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


def load(store_url: str, count: int) -> tuple[str, list[LoadedOrder]]:
    """``count`` orders, each paid 50.00 with a 10.00 credit memo, in one transaction of
    bulk inserts (a day old, so any age limit lets them through). Returns the gateway id."""
    from sqlalchemy import insert

    from db.engine import get_engine
    from db.ids import new_id
    from db.types import utcnow

    t = _tables()
    created = utcnow() - timedelta(days=1)
    gateway = new_id("PaymentGateway")
    orders = [LoadedOrder(new_id("OrderSummary"), new_id("OrderPaymentSummary"), new_id("Payment"), new_id("CreditMemo"))
              for _ in range(count)]
    common = {"currency_iso_code": "USD", "created_date": created}
    with get_engine(store_url).begin() as connection:
        connection.execute(insert(t["PaymentGateway"]), [{"id": gateway, "payment_gateway_name": "bench sandbox",
                                                          "created_date": created}])
        connection.execute(insert(t["OrderSummary"]), [
            {"id": o.order, "order_number": f"SW-{n}", **common} for n, o in enumerate(orders)])
        connection.execute(insert(t["OrderPaymentSummary"]), [
            {"id": o.summary, "order_summary_id": o.order, "captured_amount": PAID, **common} for o in orders])
        connection.execute(insert(t["Payment"]), [
            {"id": o.payment, "order_payment_summary_id": o.summary, "payment_gateway_id": gateway, "amount": PAID,
             "gateway_ref_number": f"ch_sbx_{secrets.token_hex(8)}", **common} for o in orders])
        connection.execute(insert(t["CreditMemo"]), [
            {"id": o.memo, "order_summary_id": o.order, "total_amount": MEMO, "balance": MEMO, **common} for o in orders])
        connection.exec_driver_sql("ANALYZE")
    return gateway, orders


def sweep(count: int, batch_size: int, concurrency: int = 4) -> float:
    """Seconds for the sweep-credit-memos flow to refund every memo, events delivered. The
    flow runs without Prefect's per-run heartbeat thread, as the project's executor runs it
    (joining that thread costs up to a second per run)."""
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from actions.sweep_credit_memos import SweepCreditMemosInput
    from flows.sweep_credit_memos import sweep_credit_memos

    request = SweepCreditMemosInput(older_than_seconds=0, batch_size=batch_size, gateway_concurrency=concurrency)
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        started = time.perf_counter()
        out = sweep_credit_memos(request)
        EventsWorker.drain_all()
        elapsed = time.perf_counter() - started
    refunded = out.totals["USD"].refunded_amount if out.totals else None
    assert (out.swept, out.skipped, refunded) == (count, [], MEMO * count), out.model_dump(exclude={"skipped"})
    return elapsed


def floor(store_url: str, gateway: str, orders: list[LoadedOrder], batch_size: int) -> float:
    """Seconds for the same writes as the sweep by plain Core statements in a loop."""
    from sqlalchemy import insert, update

    from db.engine import get_engine
    from db.ids import new_id
    from db.types import utcnow

    t = _tables()
    refund, log, event, ops, payment, memo, booking = (t[name] for name in (
        "Refund", "PaymentGatewayLog", "RefundEvent", "OrderPaymentSummary", "Payment", "CreditMemo",
        "SandboxGatewayRefund"))
    zero = Decimal("0.00")
    engine = get_engine(store_url)

    def entity(refund_id: str, o: LoadedOrder, status: str, revision: int) -> str:
        return json.dumps({"id": refund_id, "chargeId": o.payment, "orderPaymentSummaryId": o.summary,
                           "creditMemoId": o.memo, "amount": str(MEMO), "currencyCode": "USD", "status": status,
                           "fundingSource": "CreditMemo", "revision": revision}, separators=(",", ":"))

    started = time.perf_counter()
    for start in range(0, len(orders), batch_size):
        batch = [(o, new_id("Refund")) for o in orders[start:start + batch_size]]
        with engine.begin() as c:
            for o, refund_id in batch:
                key, now = f"om-refund-{refund_id}", utcnow()
                c.execute(insert(refund), {
                    "id": refund_id, "order_payment_summary_id": o.summary, "payment_id": o.payment, "credit_memo_id": o.memo,
                    "amount": MEMO, "currency_iso_code": "USD", "status": "Pending", "idempotency_key": key,
                    "background_operation_id": "floor", "created_date": now, "last_modified_date": now})
                c.execute(insert(log), {
                    "id": new_id("PaymentGatewayLog"), "payment_gateway_id": gateway, "reference_entity_id": refund_id,
                    "interaction_type": "Refund", "sf_ref_number": key, "background_operation_id": "floor"})
                c.execute(insert(event), {"event_id": str(uuid.uuid4()), "event_type": "RefundCreated",
                                          "refund_id": refund_id, "sequence": 1, "entity": entity(refund_id, o, "PENDING", 1)})
                c.execute(update(ops).where(ops.c.id == o.summary), {"pending_refund_amount": MEMO})
                c.execute(update(payment).where(payment.c.id == o.payment), {"pending_refund_amount": MEMO})
                c.execute(update(memo).where(memo.c.id == o.memo), {"balance": zero})
        references = {}
        for o, refund_id in batch:
            references[refund_id] = f"re_sbx_{secrets.token_hex(8)}"
            with engine.begin() as c:
                c.execute(insert(booking), {
                    "idempotency_key": f"om-refund-{refund_id}", "charge_reference": o.payment, "amount": MEMO,
                    "currency": "USD", "outcome": "approve", "gateway_reference": references[refund_id],
                    "result_code": "approved", "message": "Refund approved"})
        with engine.begin() as c:
            for o, refund_id in batch:
                key = f"om-refund-{refund_id}"
                c.execute(update(log).where(log.c.sf_ref_number == key), {
                    "interaction_status": "Success", "sf_result_code": "Success", "gateway_result_code": "approved",
                    "gateway_message": "Refund approved", "gateway_ref_number": references[refund_id],
                    "request": "{}", "response": "{}"})
                c.execute(update(refund).where(refund.c.id == refund_id), {
                    "status": "Processed", "revision": 2, "gateway_ref_number": references[refund_id],
                    "gateway_result_code": "approved", "gateway_message": "Refund approved", "last_modified_date": utcnow()})
                c.execute(insert(event), {"event_id": str(uuid.uuid4()), "event_type": "RefundUpdated",
                                          "refund_id": refund_id, "sequence": 2, "entity": entity(refund_id, o, "SUCCEEDED", 2)})
                c.execute(update(ops).where(ops.c.id == o.summary), {"pending_refund_amount": zero, "refunded_amount": MEMO})
                c.execute(update(payment).where(payment.c.id == o.payment), {"pending_refund_amount": zero,
                                                                             "refunded_amount": MEMO})
    return time.perf_counter() - started


def _check_ledger(store_url: str) -> None:
    from actions.audit_ledger import find_violations
    from db.engine import session_scope

    with session_scope(store_url) as session:
        _checked, violations = find_violations(session)
    assert violations == [], violations[:5]


def measure(scratch: Scratch, sizes: tuple[int, ...], repeats: int, batch_size: int, results: Results) -> None:
    """Add each size's figures to ``results``."""
    store_url = scratch.store_url
    for count in sizes:
        swept, floors = [], []
        for repeat in range(repeats):
            reset(store_url)
            load(store_url, count)
            scratch.settle()
            swept.append(count / sweep(count, batch_size))
            if repeat == 0:
                _check_ledger(store_url)
            reset(store_url)
            gateway, orders = load(store_url, count)
            scratch.settle()
            floors.append(count / floor(store_url, gateway, orders, batch_size))
            if repeat == 0:
                _check_ledger(store_url)
        rate, floor_rate = statistics.median(swept), statistics.median(floors)
        results.add(f"sweep memos/s ({count:,} memos)", rate, "memos/s", floor=floor_rate,
                    note=f"one flow run, batches of {batch_size}, sandbox gateway")
        results.add(f"sweep floor memos/s ({count:,} memos)", floor_rate, "memos/s",
                    note="same rows and transactions, plain Core loop")
        results.add(f"sweep / floor ({count:,} memos)", rate / floor_rate, "x", note="target >= 0.5")


@dataclass
class Scratch:
    store_url: str
    pids: tuple[int, ...]  # the Prefect server and the PostgreSQL postmaster

    def settle(self, timeout: float = 120) -> None:
        """Wait until the Prefect server (still ingesting the last run's events, say) and
        PostgreSQL are idle, so each measurement starts from a quiet machine."""
        deadline = time.monotonic() + timeout
        busy = True
        while busy and time.monotonic() < deadline:
            busy = _cpu_seconds(self.pids, window=0.5) > 0.05  # measures over half a second


def _cpu_seconds(pids: tuple[int, ...], *, window: float) -> float:
    """CPU seconds the process trees of ``pids`` use during the next ``window`` seconds."""
    def total() -> float:
        seconds = 0.0
        for pid in pids:
            with suppress(psutil.Error):
                root = psutil.Process(pid)
                for process in [root, *root.children(recursive=True)]:
                    with suppress(psutil.Error):
                        times = process.cpu_times()
                        seconds += times.user + times.system
        return seconds

    before = total()
    time.sleep(window)
    return max(0.0, total() - before)


@contextmanager
def scratch_environment() -> Iterator[Scratch]:
    """Embedded PostgreSQL and a Prefect server in a scratch directory, a migrated store on
    it; this process points at both (PREFECT_API_URL, OM_DATABASE_URL) until the end,
    then back."""
    from prefect.context import refresh_global_settings_context
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogHandler

    from db.engine import get_engine
    from db.migrate import upgrade
    from db.settings import get_store_settings
    from runtime.postgres import EmbeddedPostgres
    from runtime.prefect_server import prefect_env, start_prefect_server
    from runtime.processes import free_port

    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="om-sweep-bench-") as scratch, \
            EmbeddedPostgres.start(Path(scratch) / "pg", keep=False) as postgres:
        postgres.ensure_database("prefect")
        postgres.ensure_database("store")
        server, api_url = start_prefect_server(
            port=free_port(), home=Path(scratch) / "prefect", log_path=Path(scratch) / "prefect-server.log",
            database_url=postgres.sqlalchemy_url("prefect", driver="postgresql+asyncpg"))
        store_url = postgres.sqlalchemy_url("store")
        try:
            EventsWorker.drain_all()  # a worker of an earlier server would keep sending there
            os.environ.update({k: v for k, v in prefect_env(api_url).items() if k.startswith("PREFECT_")},
                              OM_DATABASE_URL=store_url)
            refresh_global_settings_context()
            get_store_settings.cache_clear()
            upgrade(store_url)
            yield Scratch(store_url, (server.pid, postgres.pid))
        finally:
            APILogHandler().flush()
            EventsWorker.drain_all()
            os.environ.clear()
            os.environ.update(saved)
            refresh_global_settings_context()
            get_store_settings.cache_clear()
            get_engine(store_url).dispose()
            server.stop()


def run(sizes: tuple[int, ...] = (1000, 10000), repeats: int = 3, batch_size: int = BATCH_SIZE,
        results: Results | None = None) -> Results:
    """Measure each size in a scratch environment (``scratch_environment``); return the figures."""
    results = results or Results(machine=machine())
    with scratch_environment() as scratch:
        measure(scratch, sizes, repeats, batch_size, results)
    return results


def main_figures(results: Results, *, repeats: int = 3, sizes: tuple[int, ...] = (1000, 10000)) -> Results:
    """The batch sweep's figures (by default at 1,000 and 10,000 credit memos), added to
    ``results``: for ``python -m bench``, after the background-operation figures."""
    return run(sizes=sizes, repeats=repeats, results=results)


if __name__ == "__main__":
    figures = run(repeats=int(os.environ.get("SWEEP_BENCH_REPEATS", "3"))).figures
    for name, figure in figures.items():
        print(f"{name:40} {figure['value']:>12.2f} {figure['unit']:8} floor={figure['floor']} {figure['note']}")
