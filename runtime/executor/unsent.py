"""Payment refunds the REST facade recorded but could not hand to Prefect (the server went
away between the facade's commit and its create-flow-run call): the executor starts their
send runs itself, with the idempotency key the facade uses (``send_key``), so there is
one send run per refund whatever happened, and the customer's refund does not wait for
the resolver's next scheduled run. A refund the resolver has already taken up
(``resolve_attempted_at`` set) is left to it."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import FlowRun
from sqlalchemy import update
from sqlmodel import col, select

from actions.payment_refunds import PAYMENT_FUNDING, send_key
from db.engine import session_scope
from db.models import Refund, RefundStatus
from db.types import utcnow

SEND_FLOW = "send-payment-refund"
UNSENT_AFTER = timedelta(seconds=10)  # the facade starts the send right after its commit: give it that long


def start_unsent_payment_refunds(client: SyncPrefectClient, *, store_url: str | None, deployment_id: UUID,
                                 limit: int = 100) -> list[FlowRun]:
    """Start (or find: Prefect keeps one run per idempotency key and deployment) the send
    run of each Pending payment refund that has no operation after :data:`UNSENT_AFTER`,
    and record it as the refund's operation. Returns the runs."""
    cutoff = utcnow() - UNSENT_AFTER
    with session_scope(store_url) as session:
        unsent = session.exec(
            select(Refund.id)
            .where(Refund.status == RefundStatus.PENDING, col(Refund.background_operation_id).is_(None),
                   Refund.funding_source == PAYMENT_FUNDING, Refund.created_date <= cutoff,
                   # one the resolver has taken up is its own: it asks the gateway before sending
                   col(Refund.resolve_attempted_at).is_(None))
            .order_by(col(Refund.created_date)).limit(limit)
        ).all()
    runs = []
    for refund_id in unsent:
        run = client.create_flow_run_from_deployment(deployment_id, parameters={"refund_id": refund_id},
                                                     idempotency_key=send_key(refund_id))
        with session_scope(store_url) as session:
            session.execute(update(Refund).where(Refund.id == refund_id, col(Refund.background_operation_id).is_(None))
                            .values(background_operation_id=str(run.id)))
        runs.append(run)
    return runs
