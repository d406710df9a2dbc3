"""What an action run did, on its run page: Prefect artifacts keyed by record.

Each action publishes a table of what it made or moved (money as exact strings) whose
description is a short markdown summary with the records' REST links (the UI renders an
artifact's description as markdown), under a key named after the record
(``credit-memo-50g...``), so the Artifacts page shows a record's history across runs. One
artifact, not a table and a markdown artifact: each costs the Prefect server about 19 ms
of CPU, an eighth of what a whole operation costs it (bench/scale.py). The long scheduled
runs (sweep, export, audit, resolver) keep a progress artifact.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal

from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.context import FlowRunContext, TaskRunContext

logger = logging.getLogger(__name__)

SOBJECTS = "/services/data/v60.0/sobjects"
"""Where the REST facade serves the records (relative to the facade's address)."""


def in_a_run() -> bool:
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def artifact_key(record: str, record_id: str) -> str:
    """``<record>-<id>`` in lower case: Prefect's artifact keys allow a-z, 0-9 and dashes."""
    return f"{record}-{record_id}".lower()


def link(object_name: str, record_id: str) -> str:
    return f"[{record_id}]({SOBJECTS}/{object_name}/{record_id})"


def text(value: object) -> str:
    if value is None:
        return ""
    return str(value)


def publish(*, record: str, record_id: str, title: str, rows: Iterable[Mapping[str, object]], summary: str) -> None:
    """A table (one row per thing made or moved) described by a markdown summary, for one record.

    Never raises: a failure is logged, the action goes on. Call it after the transaction,
    not while holding the order's lock.

    Example:
        ```python
        publish(record="credit-memo", record_id=memo_id, title="Credit memo", rows=[...], summary="...")
        ```
    """
    if not in_a_run():
        return
    key = artifact_key(record, record_id)
    try:
        create_table_artifact(key=key, table=[{k: text(v) for k, v in row.items()} for row in rows],
                              description=f"### {title}\n\n{summary}\n")
    except Exception:  # noqa: BLE001 - the account of a change must never fail the change (money moved)
        logger.exception("could not publish the %s artifacts of %s", record, record_id)


def money(amount: Decimal | None, currency: str) -> str:
    return "" if amount is None else f"{amount} {currency}"


class Progress:
    """A progress artifact for a long run: ``Progress("sweep")`` then ``update(done, total)``."""

    def __init__(self, description: str):
        self.id = None
        if in_a_run():
            try:
                self.id = create_progress_artifact(progress=0.0, description=description)
            except Exception:  # noqa: BLE001 - progress is a courtesy, never a reason to stop
                logger.exception("could not create a progress artifact")

    def update(self, done: int, total: int) -> None:
        if self.id is None:
            return
        try:
            update_progress_artifact(self.id, progress=100.0 if total <= 0 else min(100.0, 100.0 * done / total))
        except Exception:  # noqa: BLE001
            logger.exception("could not update the progress artifact")
