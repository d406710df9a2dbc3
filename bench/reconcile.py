"""Reconcile-gateway speed: the reconcile-gateway flow over N sandbox gateway records, next
to a raw-SQL floor that reads the same rows.

Starts an embedded PostgreSQL in a scratch directory (the store, migrated with Alembic, and
a Prefect server's database) and that Prefect server (``bench.batch_sweep.scratch_environment``).
The store is loaded in bulk (COPY, in one transaction; nothing through the ORM) with one
Sandbox PaymentGateway and, per order, an order summary, its payment summary and one
100.00 sandbox payment (Processed, with its charge's gateway reference) refunded once by a
Processed payment-level refund (idempotency key, gateway reference, one PaymentGatewayLog
row, the payment's and summary's RefundedAmount rolled up), and the sandbox gateway's
booking of that refund (``sandbox_gateway_refund``: outcome approve, same key, reference,
amount and currency), every record made inside the window. Planted on purpose:

* ``altered``: bookings whose amount is 1.00 more than the store's refund (AmountDiffers);
* ``missing_at_gateway``: a second Processed refund of 7.00 on an order, rolled up and
  logged, that the gateway never booked (MissingAtGateway);
* ``external``: a booking of 5.00 made at the gateway outside the engine, with a key of its
  own, on a charge the store knows (MissingInStore, recorded by the run as a Processed refund).

Each booking is one gateway record: N = the orders' bookings + the external ones.

Then, each in a fresh process of its own, whose peak RSS is started afresh just before the
work (Linux: ``/proc/self/clear_refs``) and read as VmHWM after it (a forked-and-exec'd
process's ``ru_maxrss`` can still hold its parent's peak):

* run: the reconcile-gateway flow called with a window covering the records (From/To; To
  an hour before now, so the refunds the run records fall outside it), on the real Prefect
  server, without Prefect's per-run heartbeat thread (as the project's executor runs
  flows); the clock stops once its events have been sent. The bench fails unless the run
  found exactly the planted differences by class and recorded exactly the external refunds;
* floor: one SQL statement, streamed by a server-side cursor (psycopg, no SQLAlchemy or
  Prefect): the books in the window FULL JOINed by idempotency key to the store's refunds
  in the window that say money moved (with their payment's charge and order summary), each
  row compared in Python. It must find the same differences.

Each process reports its wall time, its RSS just before the work (imports done) and its
peak RSS during the work. After both, the ledger audit (``find_violations``) must find nothing.

    python -m bench --parts reconcile                       # 100,000 records (OM_BENCH_RECONCILE_RECORDS)
    OM_BENCH_RECONCILE_RECORDS=2000 python -m bench.reconcile

"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path

from bench.operations import Results, machine

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RECORDS = 100_000
RECORDS_ENV = "OM_BENCH_RECONCILE_RECORDS"
KEY = "reconcile"  # bench/results.json keeps this bench's figures under this key

PAID = Decimal("100.00")
ALTERED_BY = Decimal("1.00")
UNBOOKED = Decimal("7.00")  # each MissingAtGateway refund
EXTERNAL = Decimal("5.00")  # each refund made at the gateway outside the engine
STEP = timedelta(seconds=5)  # between two orders' refunds
CHUNK = 10_000  # orders per COPY round


@dataclass(frozen=True, slots=True)
class Planted:
    """How many of each difference are planted."""

    altered: int = 20
    missing_at_gateway: int = 20
    external: int = 20

    def expected(self) -> dict[str, int]:
        """The run's differences by class."""
        found = {"AmountDiffers": self.altered, "MissingAtGateway": self.missing_at_gateway, "MissingInStore": self.external}
        return {name: count for name, count in found.items() if count}


@dataclass
class Seeded:
    gateway_id: str
    records: int  # gateway records (bookings) in the window
    store_refunds: int  # Processed refunds in the window
    window_start: datetime
    window_end: datetime
    seconds: float
    altered: list[str] = field(default_factory=list)  # refund ids whose booking says 1.00 more
    missing_at_gateway: list[str] = field(default_factory=list)  # refund ids never booked
    external: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # gateway reference -> (payment id, amount)


@dataclass
class Measured:
    """One process's work: wall seconds, RSS before it and peak RSS (bytes), what it reported."""

    seconds: float
    rss_before: int
    peak_rss: int
    report: dict

    @property
    def growth(self) -> int:
        return max(0, self.peak_rss - self.rss_before)


@dataclass
class ReconcileBench:
    seeded: Seeded
    planted: Planted
    run: Measured
    floor: Measured
    audit_seconds: float
    ledger_violations: int

    @property
    def rate(self) -> float:
        return self.seeded.records / self.run.seconds

    @property
    def floor_rate(self) -> float:
        return self.seeded.records / self.floor.seconds

    def figures(self) -> Results:
        n, mb = label(self.seeded.records), 2 ** 20
        results = Results(machine=machine())
        found = ", ".join(f"{name} {count}" for name, count in sorted(self.run.report["differences"].items()))
        results.add(f"reconcile @ {n}: seed", self.seeded.seconds, "s",
                    note=f"{self.seeded.records} gateway records, {self.seeded.store_refunds} store refunds; COPY, "
                         "VACUUM ANALYZE included")
        results.add(f"reconcile @ {n}: wall", self.run.seconds, "s", floor=self.floor.seconds,
                    note=f"one flow run, events sent; found {found}")
        results.add(f"reconcile @ {n}: records/s", self.rate, "records/s", floor=self.floor_rate)
        results.add(f"reconcile @ {n}: peak RSS", self.run.peak_rss / mb, "MB", floor=self.floor.peak_rss / mb,
                    note="the flow's process, during the run (VmHWM)")
        results.add(f"reconcile @ {n}: RSS growth", self.run.growth / mb, "MB", floor=self.floor.growth / mb,
                    note="peak RSS less the RSS just before the run (imports done)")
        results.add(f"reconcile floor @ {n}: wall", self.floor.seconds, "s",
                    note="one FULL JOIN of the books and the store's refunds by key, server-side cursor")
        results.add(f"reconcile floor @ {n}: records/s", self.floor_rate, "records/s")
        results.add(f"reconcile floor @ {n}: peak RSS", self.floor.peak_rss / mb, "MB", note="psycopg only")
        results.add(f"reconcile floor @ {n}: RSS growth", self.floor.growth / mb, "MB")
        results.add(f"reconcile / floor @ {n}", self.rate / self.floor_rate, "x", note="records/s")
        results.add(f"reconcile @ {n}: ledger audit after the run", self.audit_seconds, "s",
                    note=f"{self.ledger_violations} violations")
        return results

    def as_json(self) -> dict:
        return {
            "machine": machine(), "records": self.seeded.records, "store_refunds": self.seeded.store_refunds,
            "planted": asdict(self.planted), "found": self.run.report["differences"],
            "recorded_external_refunds": len(self.run.report["recorded_refund_ids"]),
            "figures": self.figures().figures,
        }


def label(size: int) -> str:
    for unit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return f"{size:,}"


# --- the store ---------------------------------------------------------------------------


def _conninfo(store_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(store_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _plain(value):
    return value.value if isinstance(value, Enum) else value


def _copy(cursor, table, rows: list[dict]) -> None:
    """COPY ``rows`` into ``table`` (a SQLAlchemy Table); columns a row leaves out get the
    column's scalar default (the model's), so every NOT NULL column is filled."""
    from psycopg import sql

    if not rows:
        return
    given = list(rows[0])
    defaults = {c.name: c.default.arg for c in table.columns
                if c.name not in given and c.default is not None and c.default.is_scalar}
    columns = given + list(defaults)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns)))
    tail = [_plain(v) for v in defaults.values()]
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([_plain(row[c]) for c in given] + tail)


def _tables():
    from db.models import OrderPaymentSummary, OrderSummary, Payment, PaymentGateway, PaymentGatewayLog, Refund
    from gateways.sandbox_ledger import SandboxGatewayRefund

    return {model.__name__: model.__table__ for model in (
        PaymentGateway, OrderSummary, OrderPaymentSummary, Payment, Refund, PaymentGatewayLog, SandboxGatewayRefund)}


def _refund_amount(i: int) -> Decimal:
    """10.00 to 59.75: what is left on the 100.00 payment always covers 7.00 + 5.00 more."""
    return Decimal(10 + i % 50) + Decimal("0.25") * (i % 4)


def seed(store_url: str, records: int, planted: Planted = Planted(), *, window_end: datetime | None = None,
         seed_value: int = 15) -> Seeded:
    """Load ``records`` gateway records and the store's side of them into an empty, migrated
    store (PostgreSQL), in one transaction, then VACUUM ANALYZE. Returns what was planted."""
    import psycopg

    from db.ids import new_id
    from db.models import InteractionStatus, InteractionType, PaymentStatus, ProcessingMode, RefundStatus
    from domain.gateway_provider import GatewayProvider

    orders = records - planted.external
    if orders < planted.altered + planted.missing_at_gateway + planted.external or orders < 1:
        raise ValueError(f"{records} gateway records are too few for {planted}")
    t = _tables()
    started = time.perf_counter()
    end = (window_end or datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    span = STEP * (orders + 2)
    since = end - span - timedelta(days=2)  # payments are made a day before their refund
    first = since + timedelta(days=1, minutes=1)  # the first refund
    gateway = new_id("PaymentGateway")
    chosen = random.Random(seed_value).sample(range(orders), planted.altered + planted.missing_at_gateway + planted.external)
    altered = set(chosen[:planted.altered])
    unbooked = set(chosen[planted.altered:planted.altered + planted.missing_at_gateway])
    external = set(chosen[planted.altered + planted.missing_at_gateway:])
    seeded = Seeded(gateway_id=gateway, records=records, store_refunds=orders + planted.missing_at_gateway,
                    window_start=since, window_end=end, seconds=0.0)
    common = {"currency_iso_code": "USD"}
    with psycopg.connect(_conninfo(store_url)) as conn, conn.cursor() as cur:  # one transaction
        _copy(cur, t["PaymentGateway"], [{
            "id": gateway, "payment_gateway_name": "bench sandbox", "gateway_provider": GatewayProvider.SANDBOX,
            "status": "Active", "one_refund_at_a_time": False, "created_date": since}])
        for lo in range(0, orders, CHUNK):
            summaries, payment_summaries, payments, refunds, logs, books = [], [], [], [], [], []
            for i in range(lo, min(orders, lo + CHUNK)):
                at = first + STEP * i
                order, ops, payment = new_id("OrderSummary"), new_id("OrderPaymentSummary"), new_id("Payment")
                charge = f"ch_sbx_b{i:015d}"
                made = [(new_id("Refund"), _refund_amount(i), f"re_sbx_b{i:015d}", at)]
                if i in unbooked:
                    made.append((new_id("Refund"), UNBOOKED, f"re_sbx_u{i:015d}", at + timedelta(seconds=2)))
                refunded = sum((amount for _, amount, _, _ in made), Decimal("0.00"))
                summaries.append({"id": order, "order_number": f"RC-{i}", "status": "Created",
                                  "created_date": at - timedelta(days=1), **common})
                payment_summaries.append({"id": ops, "order_summary_id": order, "method": "Card", "type": "Sale",
                                          "captured_amount": PAID, "refunded_amount": refunded,
                                          "created_date": at - timedelta(days=1), **common})
                payments.append({"id": payment, "order_payment_summary_id": ops, "payment_gateway_id": gateway,
                                 "processing_mode": ProcessingMode.SALESFORCE, "amount": PAID,
                                 "status": PaymentStatus.PROCESSED, "type": "Capture", "gateway_ref_number": charge,
                                 "refunded_amount": refunded, "created_date": at - timedelta(days=1), **common})
                for refund, amount, reference, made_at in made:
                    key = f"om-refund-{refund}"
                    refunds.append({
                        "id": refund, "order_payment_summary_id": ops, "payment_id": payment, "amount": amount,
                        "status": RefundStatus.PROCESSED, "type": "Referenced", "funding_source": "Payment",
                        "idempotency_key": key, "gateway_ref_number": reference, "gateway_result_code": "approved",
                        "gateway_message": "Refund approved", "revision": 2, "background_operation_id": "bench-reconcile",
                        "processing_mode": ProcessingMode.SALESFORCE, "payment_gateway_id": gateway,
                        "sf_result_code": "Success", "created_date": made_at,
                        "last_modified_date": made_at + timedelta(seconds=1), **common})
                    logs.append({
                        "id": new_id("PaymentGatewayLog"), "payment_gateway_id": gateway, "reference_entity_id": refund,
                        "interaction_type": InteractionType.REFUND, "interaction_status": InteractionStatus.SUCCESS,
                        "gateway_result_code": "approved", "gateway_message": "Refund approved",
                        "sf_result_code": "Success", "sf_ref_number": key, "gateway_ref_number": reference,
                        "request": json.dumps({"idempotency_key": key, "reference": charge, "amount": str(amount)}),
                        "response": json.dumps({"id": reference, "status": "succeeded"}),
                        "background_operation_id": "bench-reconcile", "created_date": made_at})
                    if refund == made[0][0]:  # the order's own refund: booked (the unbooked one is not)
                        booked = amount + ALTERED_BY if i in altered else amount
                        books.append({"idempotency_key": key, "charge_reference": charge, "amount": booked,
                                      "currency": "USD", "outcome": "approve", "gateway_reference": reference,
                                      "result_code": "approved", "message": "Refund approved",
                                      "created_date": made_at + timedelta(milliseconds=500)})
                        if i in altered:
                            seeded.altered.append(refund)
                    else:
                        seeded.missing_at_gateway.append(refund)
                if i in external:  # refunded in the gateway's dashboard: the engine never heard of it
                    reference = f"re_sbx_x{i:015d}"
                    seeded.external[reference] = (payment, EXTERNAL)
                    books.append({"idempotency_key": f"dashboard-{i}", "charge_reference": charge, "amount": EXTERNAL,
                                  "currency": "USD", "outcome": "approve", "gateway_reference": reference,
                                  "result_code": "approved", "message": "Refund approved",
                                  "created_date": at + timedelta(seconds=3)})
            for name, rows in (("OrderSummary", summaries), ("OrderPaymentSummary", payment_summaries),
                               ("Payment", payments), ("Refund", refunds), ("PaymentGatewayLog", logs),
                               ("SandboxGatewayRefund", books)):
                _copy(cur, t[name], rows)
    with psycopg.connect(_conninfo(store_url), autocommit=True) as conn:
        for table in t.values():
            conn.execute(f"VACUUM (ANALYZE) {table.name}")
    seeded.seconds = time.perf_counter() - started
    return seeded


# --- the run and the floor, each in a process of its own -----------------------------------

_MEMORY = """
import contextlib
import resource
import psutil


def reset_peak():
    \"\"\"Start the peak RSS afresh (Linux: /proc/self/clear_refs, 5). After a fork-and-exec
    the process's ru_maxrss may still hold its parent's peak, so VmHWM of its own memory is read.\"\"\"
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return psutil.Process().memory_info().rss


def peak_rss():
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
"""

_RUN = _MEMORY + """
import json, sys, time
from datetime import datetime
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from actions.reconcile_gateway import ReconcileGatewayInput
from flows.reconcile_gateway import reconcile_gateway
request = ReconcileGatewayInput(window_start=datetime.fromisoformat(sys.argv[1]), window_end=datetime.fromisoformat(sys.argv[2]))
rss_before = reset_peak()
with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
    started = time.perf_counter()
    state = reconcile_gateway(request, return_state=True)
    out = state.result()
    EventsWorker.drain_all()
    seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "rss_before": rss_before,
                  "peak_rss": peak_rss(),
                  "flow_run_id": str(state.state_details.flow_run_id), "state": state.type.value,
                  "output": out.model_dump(mode="json", by_alias=False)}))
"""

_FLOOR = _MEMORY + """
import json, sys, time
from datetime import datetime
from decimal import Decimal
import psycopg
STATEMENT = '''
SELECT b.idempotency_key, b.gateway_reference, b.amount, b.currency, b.outcome, b.created_date, b.charge_reference,
       r.id, r.amount, r.currency_iso_code, r.status, r.gateway_ref_number, r.created_date, r.last_modified_date,
       r.payment_id, r.charge, r.order_summary_id
FROM (SELECT * FROM sandbox_gateway_refund WHERE created_date >= %(since)s AND created_date < %(until)s) AS b
FULL JOIN (
    SELECT refund.*, payment.gateway_ref_number AS charge, order_payment_summary.order_summary_id
    FROM refund JOIN payment ON payment.id = refund.payment_id
    JOIN order_payment_summary ON order_payment_summary.id = refund.order_payment_summary_id
    WHERE refund.payment_gateway_id = %(gateway)s AND refund.created_date >= %(since)s AND refund.created_date < %(until)s
      AND refund.status IN ('Processed', 'Reversed', 'Pending', 'Unknown')
) AS r ON r.idempotency_key = b.idempotency_key
'''
conninfo, since, until, gateway = sys.argv[1], datetime.fromisoformat(sys.argv[2]), datetime.fromisoformat(sys.argv[3]), sys.argv[4]
rss_before = reset_peak()
started = time.perf_counter()
found, gateway_records, rows = {}, 0, 0
with psycopg.connect(conninfo) as conn, conn.cursor(name="reconcile_floor") as cursor:
    cursor.itersize = 2000
    cursor.execute(STATEMENT, {"since": since, "until": until, "gateway": gateway})
    for row in cursor:
        rows += 1
        booked, stored = row[0] is not None, row[7] is not None
        gateway_records += booked
        if booked and not stored:
            difference = "MissingInStore" if row[4] in ("approve", "reversed") else None  # a refused one moved nothing
        elif stored and not booked:
            difference = "MissingAtGateway"
        elif row[3].upper() != row[9].upper():
            difference = "CurrencyDiffers"
        elif Decimal(row[2]) != Decimal(row[8]):
            difference = "AmountDiffers"
        else:
            difference = None
        if difference:
            found[difference] = found.get(difference, 0) + 1
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "rss_before": rss_before,
                  "peak_rss": peak_rss(),
                  "rows": rows, "gateway_records": gateway_records, "differences": found}))
"""


def _in_process(script: str, *args: str, env: dict[str, str], timeout: float) -> Measured:
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"the measured process failed ({done.returncode}):\n{done.stderr[-4000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return Measured(seconds=report.pop("seconds"), rss_before=report.pop("rss_before"), peak_rss=report.pop("peak_rss"),
                    report=report)


def _environment(store_url: str) -> dict[str, str]:
    """This process's environment for the measured processes, with the store at ``store_url``."""
    if not os.environ.get("PREFECT_API_URL"):
        raise RuntimeError("PREFECT_API_URL is not set: the run needs a real Prefect server (unset, Prefect would "
                           "start an ephemeral one in the measured process)")
    env = dict(os.environ, OM_DATABASE_URL=store_url, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(
        os.pathsep))]))
    return env


def run_flow(store_url: str, seeded: Seeded, *, timeout: float = 3600) -> Measured:
    """The reconcile-gateway flow over the seeded window, in a process of its own."""
    measured = _in_process(_RUN, seeded.window_start.isoformat(), seeded.window_end.isoformat(),
                           env=_environment(store_url), timeout=timeout)
    [account] = measured.report["output"]["accounts"]  # the one sandbox account
    measured.report.update(
        {name: account[name] for name in ("differences", "recorded_refund_ids", "gateway_records", "matched",
                                          "store_records_checked", "new_findings", "still_open", "resolved",
                                          "lookups_failed")})
    return measured


def run_floor(store_url: str, seeded: Seeded, *, timeout: float = 3600) -> Measured:
    """The raw-SQL floor over the seeded window, in a process of its own."""
    return _in_process(_FLOOR, _conninfo(store_url), seeded.window_start.isoformat(), seeded.window_end.isoformat(),
                       seeded.gateway_id, env=_environment(store_url), timeout=timeout)


def check_run(seeded: Seeded, planted: Planted, run: Measured) -> None:
    """Fail unless the run found exactly what was planted: a bench of a broken run measures nothing."""
    r = seeded.records
    expected = {
        "state": "COMPLETED", "differences": planted.expected(), "gateway_records": r,
        "matched": r - planted.external - planted.altered, "store_records_checked": planted.missing_at_gateway,
        "new_findings": planted.altered + planted.missing_at_gateway + planted.external, "still_open": 0, "resolved": 0,
        "lookups_failed": 0, "recorded": planted.external,
    }
    got = {name: run.report[name] for name in expected if name != "recorded"}
    got["recorded"] = len(run.report["recorded_refund_ids"])
    if got != expected:
        raise AssertionError(f"the reconcile run did not find what was planted: expected {expected}, got {got}")


def check_floor(seeded: Seeded, planted: Planted, floor: Measured) -> None:
    got = (floor.report["gateway_records"], floor.report["differences"])
    if got != (seeded.records, planted.expected()):
        raise AssertionError(f"the floor read other rows: expected {(seeded.records, planted.expected())}, got {got}")


def audit(store_url: str) -> tuple[float, int]:
    """The ledger audit over the store: seconds, violations."""
    from actions.audit_ledger import find_violations
    from db.engine import session_scope

    started = time.perf_counter()
    with session_scope(store_url) as session:
        _checked, violations = find_violations(session)
    return time.perf_counter() - started, len(violations)


def measure(store_url: str, records: int, planted: Planted = Planted(), *,
            settle: Callable[[], None] = lambda: None, check_ledger: bool = True) -> ReconcileBench:
    """Seed ``records`` gateway records into the empty, migrated store at ``store_url``, then
    measure the flow (on the Prefect server PREFECT_API_URL names) and the floor; both must
    find what was planted. ``settle`` waits for a quiet machine before each measurement."""
    seeded = seed(store_url, records, planted)
    settle()
    run = run_flow(store_url, seeded)
    check_run(seeded, planted, run)
    settle()
    floor = run_floor(store_url, seeded)
    check_floor(seeded, planted, floor)
    audit_seconds, violations = audit(store_url) if check_ledger else (0.0, 0)
    if violations:
        raise AssertionError(f"the ledger audit found {violations} violations after the run")
    return ReconcileBench(seeded=seeded, planted=planted, run=run, floor=floor, audit_seconds=audit_seconds,
                          ledger_violations=violations)


def run(records: int = RECORDS, planted: Planted = Planted()) -> ReconcileBench:
    """``measure`` in a scratch environment: embedded PostgreSQL and a Prefect server."""
    from bench.batch_sweep import scratch_environment

    with scratch_environment() as scratch:
        return measure(scratch.store_url, records, planted, settle=scratch.settle)


def records_from_env(default: int = RECORDS) -> int:
    return int(os.environ.get(RECORDS_ENV, default))


def save(bench: ReconcileBench, out: Path) -> None:
    """Write the figures into ``out`` under KEY, keeping everything else the file holds."""
    document = json.loads(out.read_text()) if out.exists() else {}
    document[KEY] = bench.as_json()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2))


def side_by_side(bench: ReconcileBench) -> Iterator[tuple[str, str, str, str]]:
    """(figure, flow run, floor, run / floor) rows for a table."""
    mb = 2 ** 20
    yield "wall (s)", f"{bench.run.seconds:.2f}", f"{bench.floor.seconds:.2f}", f"{bench.run.seconds / bench.floor.seconds:.1f}x"
    yield "records/s", f"{bench.rate:,.0f}", f"{bench.floor_rate:,.0f}", f"{bench.rate / bench.floor_rate:.3f}x"
    yield ("peak RSS (MB)", f"{bench.run.peak_rss / mb:.1f}", f"{bench.floor.peak_rss / mb:.1f}",
           f"{bench.run.peak_rss / bench.floor.peak_rss:.1f}x")
    yield ("RSS growth during the work (MB)", f"{bench.run.growth / mb:.1f}", f"{bench.floor.growth / mb:.1f}", "")


def print_table(bench: ReconcileBench) -> None:
    from rich.console import Console
    from rich.table import Table

    found = ", ".join(f"{k} {v}" for k, v in sorted(bench.run.report["differences"].items()))
    table = Table(title=f"reconcile-gateway over {bench.seeded.records:,} gateway records ({found}; "
                        f"{len(bench.run.report['recorded_refund_ids'])} external refunds recorded)")
    for column in ("figure", "reconcile-gateway flow", "raw SQL floor", "flow / floor"):
        table.add_column(column)
    for row in side_by_side(bench):
        table.add_row(*row)
    Console(width=160).print(table)


if __name__ == "__main__":
    done = run(records_from_env())
    print_table(done)
    save(done, Path(os.environ.get("OM_BENCH_OUT", PROJECT_ROOT / "bench" / "results.json")))
