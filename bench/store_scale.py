"""Per-operation cost of the money operations' store work with 1k, 100k and 1M order summaries.

Starts an embedded PostgreSQL in a scratch directory, migrates a store and grows it step
by step (each step loads only the new order summaries, in SQL from ``generate_series``,
then VACUUM ANALYZE). Every order summary comes with what the money actions read: two
fulfilled order items; a payment summary with an authorization of 120.00 of which 100.00
was captured (the capture's gateway log and sandbox booking); the fulfilment invoice, its
lines and the capture applied to it. A quarter of the orders were refunded 20.00 from a
credit memo (one in five of those paid a 5.00 return-fee invoice from it first), a tenth
got a payment-level refund of 10.00, one in fifty a declined refund and its
ProcessException; each refund has its gateway log, sandbox booking, two outbox events
and their delivered webhooks. Ids look like the engine's (18 characters, random order).

At each size it runs, on order summaries picked at random (each kind of operation uses
one once), the store work of each operation: the ensure-refunds task's body on a fresh 10.00 credit memo
(lock, plan, reserve, sandbox gateway, settle, read back), a payment-level refund of 5.00
(reserve, then send), the ensure-funds task's body on a fresh 10.00 invoice (capturing
from the authorization), refundability, and a Query Refunds page by orderSummaryId.
Prefect's side of the tasks (run logger, om.refund.* events) is switched off:
bench/operations.py measures the whole path. Per operation: wall time, this process's CPU
and the CPU of the PostgreSQL server's process tree (Linux's schedstat, to the
nanosecond), each the median over the repeats, which go round the kinds in turn.
At each size the ledger audit (audit-ledger's ``find_violations``) runs once over the whole
store in a process of its own: its wall time and that process's peak RSS.
At the largest size every statement the operations ran (and the outbox and Query Refunds
reads) is EXPLAINed and the sequential scans are reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from unittest.mock import patch
from uuid import uuid4

import psutil
import psycopg

from bench.operations import Results, machine

CHUNK = 100_000  # order summaries per load transaction
TEN, FIVE = Decimal("10.00"), Decimal("5.00")
SUBSCRIPTION = "bench-hook"


def sfid(prefix: str, key: object) -> str:
    """The id the loader gives record ``key`` of an object (as in SQL: ``_sql_id``)."""
    return prefix + hashlib.md5(f"{prefix}{key}".encode()).hexdigest()[:15]


def _sql_id(prefix: str, key: str) -> str:
    return f"'{prefix}' || left(md5('{prefix}' || {key}), 15)"


GATEWAY = sfid("0b0", 0)
LINES = "(VALUES (1, 'Shirt', 30.00, 2), (2, 'Shoes', 40.00, 1)) AS line(n, name, price, qty)"
STEP = [  # one load transaction: order summaries %(lo)s..%(hi)s; s = the orders, h = their past refunds
    f"""CREATE TEMP TABLE s ON COMMIT DROP AS SELECT i, {_sql_id('1Os', 'i')} AS os, {_sql_id('0aP', 'i')} AS ops,
        {_sql_id('0Xc', 'i')} AS auth, {_sql_id('0a3', 'i')} AS pay, {_sql_id('3tt', 'i')} AS inv,
        'ch_sbx_' || left(md5('ch' || i), 16) AS charge, timestamptz '2024-01-01Z' + i * interval '20 seconds' AS t
        FROM generate_series(%(lo)s::int, %(hi)s::int) AS i""",
    f"""CREATE TEMP TABLE h ON COMMIT DROP AS SELECT s.*, kind, amount, status,
        {_sql_id('0a4', 'kind || i')} AS refund, CASE WHEN kind = 'memo' THEN {_sql_id('50g', 'i')} END AS memo,
        CASE WHEN kind = 'memo' THEN 'CreditMemo' ELSE 'Payment' END AS funding,
        CASE WHEN status = 'Processed' THEN 're_sbx_' || left(md5('re' || kind || i), 16) END AS gref,
        CASE WHEN status = 'Processed' THEN 'approved' ELSE 'card_declined' END AS code,
        CASE WHEN status = 'Processed' THEN 'Refund approved' ELSE 'The refund was declined by the issuer' END AS message,
        md5('op' || kind || i)::uuid::text AS op, t + interval '3 days' AS rt
        FROM s JOIN (VALUES ('memo', 4, 0, 20.00, 'Processed'), ('payment', 10, 1, 10.00, 'Processed'),
                            ('declined', 50, 7, 13.13, 'Failed')) AS k(kind, every, rest, amount, status)
          ON mod(i, every) = rest""",
    """INSERT INTO order_summary (id, order_number, currency_iso_code, status, created_date)
        SELECT os, 'SC-' || i, 'USD', 'Created', t FROM s""",
    f"""INSERT INTO order_item_summary (id, order_summary_id, name, type, unit_price, quantity_ordered, total_tax_amount,
        quantity_canceled, quantity_fulfilled, quantity_return_initiated, quantity_returned, currency_iso_code, created_date)
        SELECT {_sql_id('10u', "i || '-' || n")}, os, name, 'Order Product', price, qty, 0, 0, qty, 0, 0, 'USD', t
        FROM s, {LINES}""",
    """INSERT INTO order_payment_summary (id, order_summary_id, method, type, currency_iso_code, authorization_amount,
        captured_amount, refunded_amount, pending_capture_amount, pending_refund_amount, created_date)
        SELECT s.ops, s.os, 'Card', 'Sale', 'USD', 120.00, 100.00, coalesce(h.amount, 0), 0, 0, s.t
        FROM s LEFT JOIN h ON h.i = s.i AND h.status = 'Processed'""",
    f"""INSERT INTO payment_authorization (id, order_payment_summary_id, payment_gateway_id, amount, status,
        payment_method_type, gateway_ref_number, currency_iso_code, captured_amount, pending_capture_amount, created_date)
        SELECT auth, ops, '{GATEWAY}', 120.00, 'Processed', 'Card', 'pi_sbx_' || left(md5('pi' || i), 16), 'USD', 100.00,
        0, t FROM s""",
    f"""INSERT INTO payment (id, order_payment_summary_id, payment_gateway_id, amount, status, type, payment_method_type,
        gateway_ref_number, currency_iso_code, refunded_amount, pending_refund_amount, applied_amount,
        payment_authorization_id, created_date)
        SELECT s.pay, s.ops, '{GATEWAY}', 100.00, 'Processed', 'Capture', 'Card', s.charge, 'USD', coalesce(h.amount, 0),
        0, 100.00, s.auth, s.t + interval '1 day' FROM s LEFT JOIN h ON h.i = s.i AND h.status = 'Processed'""",
    f"""INSERT INTO payment_gateway_log (id, payment_gateway_id, reference_entity_id, interaction_type, interaction_status,
        gateway_result_code, gateway_message, sf_result_code, sf_ref_number, gateway_ref_number, request, response,
        background_operation_id, created_date)
        SELECT {_sql_id('0Xt', "'c' || i")}, '{GATEWAY}', pay, 'Capture', 'Success', 'approved', 'Capture approved',
        'Success', 'om-capture-' || pay, charge, json_build_object('idempotency_key', 'om-capture-' || pay, 'amount',
        '100.00', 'currency', 'USD')::text, json_build_object('id', charge, 'status', 'succeeded')::text,
        md5('fund' || i)::uuid::text, t + interval '1 day' FROM s""",
    """INSERT INTO sandbox_gateway_capture (idempotency_key, charge_reference, amount, currency, outcome,
        gateway_reference, result_code, message, created_date)
        SELECT 'om-capture-' || pay, 'pi_sbx_' || left(md5('pi' || i), 16), 100.00, 'USD', 'approve', charge,
        'approved', 'Capture approved', t + interval '1 day' FROM s""",
    """INSERT INTO invoice (id, order_summary_id, total_amount, currency_iso_code, balance, status, created_date)
        SELECT inv, os, 100.00, 'USD', 0, 'Posted', t + interval '1 day' FROM s""",
    f"""INSERT INTO invoice_line (id, invoice_id, name, type, charge_amount, tax_amount, created_date)
        SELECT {_sql_id('3tu', "i || '-' || n")}, inv, name, 'Charge', price * qty, 0, t + interval '1 day'
        FROM s, {LINES}""",
    f"""INSERT INTO payment_line_invoice (id, payment_id, invoice_id, amount, currency_iso_code, type,
        background_operation_id, applied_date)
        SELECT {_sql_id('0Xe', 'i')}, pay, inv, 100.00, 'USD', 'Applied', md5('fund' || i)::uuid::text,
        t + interval '1 day' FROM s""",
    """INSERT INTO credit_memo (id, order_summary_id, total_amount, description, currency_iso_code, balance, status,
        created_date)
        SELECT memo, os, amount + CASE WHEN mod(i, 20) = 0 THEN 5.00 ELSE 0 END, 'Return', 'USD', 0, 'Posted', rt
        FROM h WHERE kind = 'memo'""",
    f"""INSERT INTO credit_memo_line (id, credit_memo_id, name, type, charge_amount, tax_amount, created_date)
        SELECT {_sql_id('50h', 'i')}, memo, 'Return: Shirt', 'Charge',
        amount + CASE WHEN mod(i, 20) = 0 THEN 5.00 ELSE 0 END, 0, rt FROM h WHERE kind = 'memo'""",
    f"""INSERT INTO invoice (id, order_summary_id, total_amount, description, currency_iso_code, balance, status,
        created_date)
        SELECT {_sql_id('3tt', "'fee' || i")}, os, 5.00, 'Return fee', 'USD', 0, 'Posted', rt
        FROM h WHERE kind = 'memo' AND mod(i, 20) = 0""",
    f"""INSERT INTO credit_memo_inv_application (id, credit_memo_id, invoice_id, amount, currency_iso_code,
        background_operation_id, applied_date)
        SELECT {_sql_id('5ia', 'i')}, memo, {_sql_id('3tt', "'fee' || i")}, 5.00, 'USD', op, rt
        FROM h WHERE kind = 'memo' AND mod(i, 20) = 0""",
    """INSERT INTO refund (id, order_payment_summary_id, payment_id, credit_memo_id, amount, currency_iso_code, status,
        type, funding_source, idempotency_key, gateway_ref_number, gateway_result_code, gateway_message, revision,
        background_operation_id, created_date, last_modified_date)
        SELECT refund, ops, pay, memo, amount, 'USD', status, 'Referenced', funding, 'om-refund-' || refund, gref, code,
        message, 2, op, rt, rt + interval '5 seconds' FROM h""",
    """INSERT INTO refund_event (event_id, event_type, refund_id, sequence, entity, created_date)
        SELECT md5(refund || seq)::uuid::text, event, refund, seq, json_build_object('id', refund, 'chargeId', pay,
        'orderPaymentSummaryId', ops, 'creditMemoId', memo, 'amount', amount::text, 'currencyCode', 'USD',
        'status', CASE WHEN seq = 1 THEN 'PENDING' WHEN status = 'Processed' THEN 'SUCCEEDED' ELSE 'FAILED' END,
        'fundingSource', funding, 'reason', NULL, 'note', NULL, 'directDebitOverrideReason', NULL,
        'gatewayReferenceNumber', CASE WHEN seq = 2 THEN gref END, 'revision', seq, 'createdDate', rt,
        'updatedDate', rt + (seq - 1) * interval '5 seconds')::text, rt + (seq - 1) * interval '5 seconds'
        FROM h, (VALUES (1, 'RefundCreated'), (2, 'RefundUpdated')) AS e(seq, event) ORDER BY rt, refund, seq""",
    f"""INSERT INTO webhook_delivery (subscription, event_id, status, attempts, next_attempt_at, delivered_date)
        SELECT '{SUBSCRIPTION}', md5(refund || seq)::uuid::text, 'Delivered', 1, rt, rt + interval '1 minute'
        FROM h, (VALUES (1), (2)) AS e(seq)""",
    f"""INSERT INTO payment_gateway_log (id, payment_gateway_id, reference_entity_id, interaction_type,
        interaction_status, gateway_result_code, gateway_message, sf_result_code, sf_ref_number, gateway_ref_number,
        request, response, background_operation_id, created_date)
        SELECT {_sql_id('0Xt', 'refund')}, '{GATEWAY}', refund, 'Refund',
        CASE WHEN status = 'Processed' THEN 'Success' ELSE 'Failed' END, code, message,
        CASE WHEN status = 'Processed' THEN 'Success' ELSE 'Decline' END, 'om-refund-' || refund, gref,
        json_build_object('idempotency_key', 'om-refund-' || refund, 'reference', charge, 'amount', amount::text)::text,
        json_build_object('id', gref, 'result_code', code, 'message', message)::text, op, rt FROM h""",
    """INSERT INTO sandbox_gateway_refund (idempotency_key, charge_reference, amount, currency, outcome,
        gateway_reference, result_code, message, created_date)
        SELECT 'om-refund-' || refund, charge, amount, 'USD',
        CASE WHEN status = 'Processed' THEN 'approve' ELSE 'decline' END, gref, code, message, rt FROM h""",
    f"""INSERT INTO process_exception (id, attached_to_id, order_summary_id, category, severity, status, message,
        description, background_operation_id, created_date)
        SELECT {_sql_id('1Pe', 'i')}, refund, os, 'Payment', 'High', 'New',
        'Refund of ' || amount || ' USD failed at the gateway: card_declined', message, op, rt
        FROM h WHERE status = 'Failed'""",
]


def _load(conninfo: str, lo: int, hi: int) -> None:
    with psycopg.connect(conninfo) as conn:  # one transaction
        conn.execute("SET session_replication_role = replica")  # consistent by construction: no per-row FK checks
        conn.execute(STEP[0], {"lo": lo, "hi": hi})
        for statement in STEP[1:]:
            conn.execute(statement)


def grow(conninfo: str, start: int, stop: int, *, workers: int = 2) -> None:
    """Load order summaries ``start + 1``..``stop`` with their related rows, ``workers`` chunks
    at a time, then VACUUM ANALYZE. Amounts are exact numeric literals, as the store keeps them."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if start == 0:
            conn.execute(f"""INSERT INTO payment_gateway (id, payment_gateway_name, gateway_provider, status,
                one_refund_at_a_time, created_date) VALUES ('{GATEWAY}', 'bench sandbox', 'Sandbox', 'Active', false,
                timestamptz '2024-01-01Z')""")
        with ThreadPoolExecutor(workers) as pool:
            chunks = [pool.submit(_load, conninfo, lo, min(stop, lo + CHUNK - 1)) for lo in range(start + 1, stop + 1, CHUNK)]
            for chunk in chunks:
                chunk.result()
        conn.execute("VACUUM (ANALYZE)")


# --- the operations: each prepares (untimed, in one transaction) and returns the timed work ---


def _ensure_refunds(session, n: int) -> Callable[[], object]:
    from actions.ensure_refunds import EnsureRefundsInput, ensure_refunds
    from db.ids import new_id
    from db.models import CreditMemo

    order, memo = sfid("1Os", n), new_id("CreditMemo")
    session.add(CreditMemo(id=memo, order_summary_id=order, total_amount=TEN, balance=TEN, currency_iso_code="USD"))
    return lambda: ensure_refunds.fn(order, EnsureRefundsInput(credit_memo_id=memo), str(uuid4()))


def _refund_payment(session, n: int) -> Callable[[], object]:
    from actions.payment_refunds import RefundPaymentInput, reserve_payment_refund, send_reserved_refund
    from db.engine import session_scope

    def work():
        with session_scope() as s:
            refund = reserve_payment_refund(session=s, request=RefundPaymentInput(charge_id=sfid("0a3", n), amount=FIVE))
        return send_reserved_refund(refund.id, resuming=False)
    return work


def _ensure_funds(session, n: int) -> Callable[[], object]:
    from actions.ensure_funds import EnsureFundsInput, ensure_funds
    from db.ids import new_id
    from db.models import Invoice

    order, invoice = sfid("1Os", n), new_id("Invoice")
    session.add(Invoice(id=invoice, order_summary_id=order, total_amount=TEN, balance=TEN, currency_iso_code="USD"))
    return lambda: ensure_funds.fn(order, EnsureFundsInput(invoice_id=invoice), str(uuid4()))


def _refundability(session, n: int) -> Callable[[], object]:
    from actions.payment_refunds import payment_refundability
    from db.engine import session_scope

    def work():
        with session_scope() as s:
            return payment_refundability(session=s, charge_id=sfid("0a3", n))
    return work


def _query_refunds(session, n: int) -> Callable[[], object]:
    from actions.query_refunds import RefundFilter, RefundQuery, query_refunds
    from db.engine import session_scope

    def work():
        with session_scope() as s:
            return query_refunds(session=s, query=RefundQuery(filter=RefundFilter(order_summary_id=sfid("1Os", n))))
    return work


OPERATIONS: dict[str, Callable] = {
    "ensure-refunds": _ensure_refunds, "refund-payment": _refund_payment, "ensure-funds": _ensure_funds,
    "refundability": _refundability, "query-refunds by order": _query_refunds,
}


def _other_reads(n: int) -> None:
    """Reads the timed operations do not make: Query Refunds by charge, status and date, the
    webhook outbox, the resolvers' search for stuck refunds and captures (nothing is written)."""
    from sqlmodel import Session

    from actions.query_refunds import RefundFilter, RefundQuery, RefundState, query_refunds
    from actions.resolve_captures import resolve_captures
    from actions.resolve_refunds import resolve_refunds
    from actions.webhooks import deliver_due, enqueue
    from blocks.webhooks import WebhookSubscription
    from db.engine import get_engine
    from db.types import utcnow

    subscription = WebhookSubscription(url="http://127.0.0.1:9/hook", signing_secret="bench")
    with Session(get_engine()) as s:
        for refund_filter in (RefundFilter(charge_id=sfid("0a3", n)), RefundFilter(statuses=[RefundState.PENDING]),
                              RefundFilter(created_from=utcnow() - timedelta(days=1))):
            query_refunds(session=s, query=RefundQuery(filter=refund_filter))
        enqueue(s, SUBSCRIPTION, subscription, since=utcnow() - timedelta(minutes=5))
        s.rollback()
    deliver_due(SUBSCRIPTION, subscription, http=None)  # nothing is due: reads only
    resolve_refunds.fn()  # nothing is stuck: reads only
    resolve_captures.fn()


@contextmanager
def _store_work_only() -> Iterator[None]:
    """The tasks' Prefect side off (no run context here): their run logger and their events."""
    import db.announcements
    from prefect.logging import disable_run_logger

    with disable_run_logger(), patch.object(db.announcements, "_publisher", None):
        yield


def _cpu(process: psutil.Process) -> float:
    """A process's CPU seconds: to the nanosecond from Linux's schedstat, else in clock ticks."""
    with suppress(OSError, ValueError):
        return int(Path(f"/proc/{process.pid}/schedstat").read_text().split()[0]) / 1e9
    t = process.cpu_times()
    return t.user + t.system


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its live descendants and the children it has reaped."""
    root = psutil.Process(pid)
    t = root.cpu_times()
    total = _cpu(root) + t.children_user + t.children_system
    for child in root.children(recursive=True):
        with suppress(psutil.Error):
            total += _cpu(child)
    return total


def _measure(kind: Callable, orders: list[int], postgres_pid: int) -> tuple[float, float, float]:
    """Per operation: wall seconds, this process's CPU seconds, PostgreSQL's CPU seconds."""
    from db.engine import session_scope

    with session_scope() as session:
        work = [kind(session, n) for n in orders]
    wall, cpu, pg = time.perf_counter(), time.process_time(), _tree_cpu(postgres_pid)
    for operation in work:
        operation()
    n = len(work)
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n, (_tree_cpu(postgres_pid) - pg) / n


def _seq_scans(engine, run: Callable[[], None]) -> dict[str, int]:
    """The tables PostgreSQL would scan sequentially for the statements ``run`` executes, with their rows."""
    from sqlalchemy import event

    seen: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, executemany):
        if not executemany and statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    with engine.connect() as conn:
        plans = ["\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))
                 for statement, parameters in seen]
        tables = sorted({table for plan in plans for table in re.findall(r"Seq Scan on (\w+)", plan)})
        return {table: conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one() for table in tables}


_AUDIT = """
import json, resource, sys, time
from actions.audit_ledger import find_violations
from db.engine import session_scope
started = time.perf_counter()
with session_scope(sys.argv[1]) as session:
    checked, violations = find_violations(session)
print(json.dumps({"seconds": time.perf_counter() - started, "checked": checked, "violations": len(violations),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def audit(url: str) -> dict:
    """The ledger audit over the store at ``url``, in a fresh process: seconds, records
    checked, violations found, and the process's peak RSS in MB."""
    done = subprocess.run([sys.executable, "-c", _AUDIT, url], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def label(size: int) -> str:
    """1k, 100k, 1M; other sizes as they are."""
    for unit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def run(*, sizes: tuple[int, ...] = (1_000, 100_000, 1_000_000), operations: int = 50, repeats: int = 3,
        revision: str = "head", seed: int = 5) -> Results:
    """Grow one store through ``sizes`` order summaries; at each, time ``operations`` operations of
    each kind per repeat, each on a random order summary that kind has not used yet (so the
    smallest size needs ``repeats * operations + 2`` of them). ``revision``: the store's
    migration (e.g. "0006": without the indexes of 0007)."""
    from db.engine import get_engine
    from db.migrate import upgrade
    from db.settings import get_store_settings
    from runtime.postgres import EmbeddedPostgres

    if repeats * operations + 2 > sizes[0]:
        raise ValueError(f"{repeats} x {operations} operations of a kind need more than {sizes[0]} order summaries")
    results = Results(machine=machine())
    picker, used = random.Random(seed), {name: set() for name in OPERATIONS}

    def pick(name: str, size: int, count: int) -> list[int]:
        """``count`` order summaries of 1..size that operation ``name`` has not used."""
        chosen = []
        while len(chosen) < count:
            if (n := picker.randint(1, size)) not in used[name]:
                used[name].add(n)
                chosen.append(n)
        return chosen

    with tempfile.TemporaryDirectory(prefix="om-store-scale-") as scratch, \
            EmbeddedPostgres.start(Path(scratch) / "pg", keep=False) as postgres:
        postgres.ensure_database("store")
        url = postgres.sqlalchemy_url("store")
        upgrade(url, revision)
        figures: dict[tuple[str, int], tuple[float, float, float]] = {}
        with patch.dict(os.environ, {"OM_DATABASE_URL": url}), _store_work_only():
            get_store_settings.cache_clear()
            try:
                loaded = 0
                for size in sizes:
                    started = time.perf_counter()
                    grow(postgres.conninfo("store"), loaded, size)
                    results.add(f"load {label(loaded)} -> {label(size)}", time.perf_counter() - started, "s",
                                note=f"{size - loaded} order summaries with their rows; VACUUM ANALYZE included")
                    loaded = size
                    for name, kind in OPERATIONS.items():  # warm up: connections, caches, code paths
                        _measure(kind, pick(name, size, 1), postgres.pid)
                    samples = {name: [] for name in OPERATIONS}
                    for _ in range(repeats):  # round robin: a busy spell on the machine hits every kind alike
                        for name, kind in OPERATIONS.items():
                            samples[name].append(_measure(kind, pick(name, size, operations), postgres.pid))
                    for name in OPERATIONS:
                        wall, cpu, pg = figures[name, size] = tuple(statistics.median(s[i] for s in samples[name])
                                                                    for i in range(3))
                        results.add(f"{name} @ {label(size)}: wall", wall * 1000, "ms/op")
                        results.add(f"{name} @ {label(size)}: CPU", (cpu + pg) * 1000, "ms/op",
                                    note=f"this process {cpu * 1000:.2f} + PostgreSQL {pg * 1000:.2f}")
                    audited = audit(url)
                    results.add(f"audit-ledger @ {label(size)}: wall", audited["seconds"], "s",
                                note=f"{audited['checked']} records, {audited['violations']} violations")
                    results.add(f"audit-ledger @ {label(size)}: peak RSS", audited["peak_rss_mb"], "MB")
                small, large = sizes[0], sizes[-1]
                for name in OPERATIONS:
                    (w1, c1, p1), (w2, c2, p2) = figures[name, small], figures[name, large]
                    results.add(f"{name}: wall {label(large)}/{label(small)}", w2 / w1, "x")
                    results.add(f"{name}: CPU {label(large)}/{label(small)}", (c2 + p2) / (c1 + p1), "x")

                def once_each():
                    for name, kind in OPERATIONS.items():
                        _measure(kind, pick(name, large, 1), postgres.pid)
                    _other_reads(picker.randint(1, large))

                scans = _seq_scans(get_engine(), once_each)
                big = [f"{table} ({rows} rows)" for table, rows in scans.items() if rows > 1000]
                results.add(f"sequential scans @ {label(large)}", len(big), "tables",
                            note=", ".join(big) or f"none on a table of over 1000 rows (all: {', '.join(scans)})")
            finally:
                get_engine().dispose()
                get_store_settings.cache_clear()
    return results
