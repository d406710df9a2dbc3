"""Accounting export (seed 003's third flow): backfill every refund through Query Refunds'
cursor paging, then keep the external ledger in step from the refund events.

The ledger (blocks/accounting.py) is a JSON file: ``refunds`` (id -> the refund as the
refunds API shows it), ``eventPosition`` (how far the events were read) and
``backfilled``. The backfill notes the outbox position *before* it pages, then applies
every later event, so a refund changed while the backfill ran is brought up to date.

An event is applied only if its sequence is not older than what the ledger holds, so
applying one twice or out of order changes nothing. That makes the catch-up safe to
overlap: positions are handed out at insert but transactions commit in their own order,
so each run reads again the last ``REREAD`` positions before ``eventPosition``, and reads
only events older than ``settle_seconds``; an event committed later than both allow (a
transaction open for minutes, or clocks skewed between hosts) would be missed, which the
audit of the export against the store (``compare``) shows.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from pydantic import Field
from sqlalchemy import func
from sqlmodel import col, select

from actions.fields import ActionModel
from actions.query_refunds import RefundQuery, query_refunds
from actions.artifacts import Progress
from blocks.accounting import AccountingExport
from db.engine import session_scope
from db.models import Refund, RefundEvent
from db.outbox import refund_entity
from db.types import utcnow


REREAD = 1000  # positions read again on every run (late commits); applying them twice is harmless


class ExportRun(ActionModel):
    backfilled: int = Field(description="Refunds copied by the backfill in this run (0 once it is done).")
    events_applied: int = Field(description="Events that changed the ledger.")
    events_read: int = Field(description="New events read (past the previous position).")
    event_position: int = Field(description="The last event the ledger has applied.")
    refunds_in_ledger: int


def read_ledger(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"refunds": {}, "eventPosition": 0, "backfilled": False}
    return json.loads(path.read_text())


def write_ledger(path: Path, ledger: dict[str, Any]) -> None:
    """Atomically: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as out:
        json.dump(ledger, out, sort_keys=True, separators=(",", ":"))
        out.flush()
        os.fsync(out.fileno())
    os.replace(out.name, path)


def _apply(ledger: dict[str, Any], entity: dict[str, Any]) -> bool:
    held = ledger["refunds"].get(entity["id"])
    if held is not None and held["revision"] > entity["revision"]:
        return False  # stale: the ledger already has a newer state
    ledger["refunds"][entity["id"]] = entity
    return held != entity


def export(target: AccountingExport, *, page_size: int = 100) -> ExportRun:
    path = Path(target.path)
    ledger = read_ledger(path)
    backfilled = 0
    if not ledger["backfilled"]:
        with session_scope() as session:
            ledger["eventPosition"] = max(0, session.exec(select(func.coalesce(func.max(RefundEvent.position), 0))).one()
                                          - REREAD)
        query = RefundQuery(limit=page_size)
        while True:
            with session_scope() as session:
                page = query_refunds(session=session, query=query)
                for refund in page.refunds:
                    _apply(ledger, refund_entity(session.get(Refund, refund.id)))
            backfilled += len(page.refunds)
            if not page.has_next:
                break
            query = RefundQuery(cursor=page.next_cursor, limit=page_size)
        ledger["backfilled"] = True
        write_ledger(path, ledger)  # the backfill is kept even if applying events fails

    applied = read = 0
    settled = utcnow() - timedelta(seconds=target.settle_seconds)
    position = max(0, ledger["eventPosition"] - REREAD)
    while True:
        with session_scope() as session:
            events = list(session.exec(
                select(RefundEvent).where(RefundEvent.position > position, RefundEvent.created_date <= settled)
                .order_by(col(RefundEvent.position)).limit(page_size)))
        if not events:
            break
        for event in events:
            applied += _apply(ledger, json.loads(event.entity))
            read += event.position > ledger["eventPosition"]
            position = event.position
        ledger["eventPosition"] = max(ledger["eventPosition"], position)
        write_ledger(path, ledger)
    return ExportRun(backfilled=backfilled, events_applied=applied, events_read=read,
                     event_position=ledger["eventPosition"], refunds_in_ledger=len(ledger["refunds"]))


def compare(target: AccountingExport) -> list[str]:
    """Refund ids whose ledger entry differs from the store (missing, extra or stale)."""
    ledger = read_ledger(Path(target.path))["refunds"]
    with session_scope() as session:
        store = {r.id: refund_entity(r) for r in session.exec(select(Refund))}
    return sorted(rid for rid in store.keys() | ledger.keys() if store.get(rid) != ledger.get(rid))


@task(name="export-refunds", persist_result=False)
def export_refunds(target_block: str = "accounting") -> ExportRun:
    """Bring the accounting ledger named by ``target_block`` up to date with the refunds.

    Example:
        ```python
        from prefect import flow
        from actions.accounting_export import export_refunds

        @flow
        def nightly_export():
            return export_refunds("accounting")
        ```
    """
    progress = Progress(f"Exporting refunds to {target_block}")
    run = export(AccountingExport.load(target_block))
    progress.update(1, 1)
    get_run_logger().info("accounting export: %s", run)
    return run
