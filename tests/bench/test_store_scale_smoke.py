"""The store-scale benchmark runs end to end on tiny sizes (speed itself is never asserted),
and what its loader writes is a consistent store."""

from __future__ import annotations

import psycopg
from sqlalchemy import text

from bench.store_scale import OPERATIONS, grow, run, sfid
from db.engine import get_engine
from db.migrate import upgrade
from tests.conftest import drop_postgres_database, fresh_postgres_database
from tests.ledger import assert_ledger_invariants


def test_store_scale_measures_every_operation_at_every_size():
    figures = run(sizes=(100, 300), operations=2, repeats=1).figures
    for name in OPERATIONS:
        for size in ("100", "300"):
            assert figures[f"{name} @ {size}: wall"]["value"] > 0
            assert figures[f"{name} @ {size}: CPU"]["unit"] == "ms/op"
        assert figures[f"{name}: wall 300/100"]["value"] > 0
    assert figures["load 0 -> 100"]["value"] > 0 and figures["load 100 -> 300"]["value"] > 0
    assert figures["sequential scans @ 300"]["unit"] == "tables"
    for size, records in (("100", 1), ("300", 300)):
        audited = figures[f"audit-ledger @ {size}: wall"]
        assert audited["value"] > 0 and ", 0 violations" in audited["note"]
        assert int(audited["note"].split()[0]) >= records  # at least one record per order summary
        assert figures[f"audit-ledger @ {size}: peak RSS"]["value"] > 0


def test_the_loaded_store_keeps_the_ledger_and_its_foreign_keys(embedded_postgres):
    url = fresh_postgres_database(embedded_postgres, "om_scale")
    try:
        upgrade(url)
        grow(url, 0, 120)
        grow(url, 120, 200)  # a second step adds to the first
        assert_ledger_invariants(url)
        with get_engine(url).connect() as conn:
            counts = {table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                      for table in ("order_summary", "order_item_summary", "payment", "refund", "refund_event")}
            order = conn.execute(text("SELECT order_number FROM order_summary WHERE id = :id"), {"id": sfid("1Os", 77)})
            assert order.scalar_one() == "SC-77"
        # 200 orders: refunds for every 4th (memo), every 10th + 1 (payment) and every 50th + 7 (declined)
        assert counts == {"order_summary": 200, "order_item_summary": 400, "payment": 200, "refund": 50 + 20 + 4,
                          "refund_event": 2 * 74}
        with psycopg.connect(url) as conn:  # the loader skipped the per-row checks: every foreign key still holds
            for table, name, definition in conn.execute(
                    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f'"):
                conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name}_checked {definition}")  # validates every row
            conn.rollback()
    finally:
        drop_postgres_database(url)
