"""Resolve Refunds: settle refunds left PENDING (an operation died before sending or
settling) or UNKNOWN (the gateway timed out) by asking the gateway, never retrying blind.

For each such refund whose operation is no longer running: if the gateway knows the
idempotency key, its record settles the refund; if it has never seen the key, the refund
is sent now, with the same key. Either way each refund moves money at most once.

Each call takes the refunds asked about least recently (never-asked first, such as those
of a run that just crashed) and stamps each as asked, so refunds the gateway keeps
unknown for days cannot crowd out the rest.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from prefect import get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from pydantic import Field
from sqlalchemy import update
from sqlmodel import col, select

from actions.artifacts import Progress
from actions.refunds import emit_refund_event, settle_refund, submit_refund
from actions.fields import ActionModel
from db.engine import session_scope
from db.ledger import gateway_of
from db.models import OperationStep, OrderPaymentSummary, Payment, Refund, RefundStatus
from db.types import utcnow
from gateways.registry import GatewayAdapters


class ResolveRefundsOutput(ActionModel):
    examined: int = Field(description="Pending or Unknown refunds old enough to resolve.")
    skipped_running: int = Field(description="Left alone because their operation is still running.")
    resolved: dict[str, int] = Field(description="How many refunds ended in each status.")


def operation_is_running(operation_id: str | None) -> bool:
    """Whether the flow run carrying this operation is still going (not in a final state).
    A composition step's operation is carried by the composition's run (OperationStep)."""
    if not operation_id:
        return False
    try:
        run_id = UUID(operation_id)
    except ValueError:
        return False
    with session_scope() as session:
        step = session.get(OperationStep, operation_id)
    if step is not None:
        run_id = UUID(step.operation_id)
    with get_client(sync_client=True) as client:
        try:
            state = client.read_flow_run(run_id).state
        except ObjectNotFound:
            return False
    return state is not None and not state.is_final()


def send_run_is_running(refund_id: str) -> bool:
    """Whether a flow run started to send this refund (found by its idempotency key, for a
    refund whose operation id was never recorded) is still going."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterIdempotencyKey

    from actions.payment_refunds import send_key

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            idempotency_key=FlowRunFilterIdempotencyKey(any_=[send_key(refund_id)])), limit=5)
    return any(run.state is not None and not run.state.is_final() for run in runs)


def mark_resolve_attempted(table: type[Refund] | type[Payment], record_id: str) -> None:
    """Stamp one refund or capture as asked about now (its own one-row transaction, so it
    never holds a row lock that an operation holding its order's lock might wait for)."""
    with session_scope() as session:
        session.execute(update(table).where(table.id == record_id).values(resolve_attempted_at=utcnow()))


@task(name="resolve-refunds", persist_result=False)
def resolve_refunds(older_than_seconds: int = 300, limit: int = 500) -> ResolveRefundsOutput:
    """Settle Pending/Unknown refunds older than ``older_than_seconds`` by asking their gateway.

    Args:
        older_than_seconds: only refunds untouched for this long (an operation in flight
            settles its own).
        limit: at most this many refunds per call, the least recently asked about first.

    Example:
        ```python
        from prefect import flow
        from actions.resolve_refunds import resolve_refunds

        @flow
        def nightly_resolution():
            return resolve_refunds(older_than_seconds=600)
        ```
    """
    logger = get_run_logger()
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with session_scope() as session:
        stuck = list(session.exec(
            select(Refund)
            .where(col(Refund.status).in_([RefundStatus.PENDING, RefundStatus.UNKNOWN]))
            .where(Refund.last_modified_date <= cutoff)
            .order_by(col(Refund.resolve_attempted_at).asc().nulls_first(), col(Refund.created_date), col(Refund.id))
            .limit(limit)
        ))
    adapters = GatewayAdapters()
    resolved: dict[str, int] = {}
    skipped = 0
    progress = Progress(f"Asking the gateways about {len(stuck)} refund(s)")
    for done, refund in enumerate(stuck):
        progress.update(done, len(stuck))
        mark_resolve_attempted(Refund, refund.id)
        if operation_is_running(refund.background_operation_id) or (
                refund.background_operation_id is None and send_run_is_running(refund.id)):
            skipped += 1
            continue
        with session_scope() as session:
            payment = session.get(Payment, refund.payment_id)
            gateway = gateway_of(session, payment)  # None: External (no gateway to ask)
            order_summary_id = session.get(OrderPaymentSummary, refund.order_payment_summary_id).order_summary_id
        try:
            adapter = adapters.for_gateway(gateway)
        except Exception:  # noqa: BLE001 - leave it for the next run; a person sees the log
            logger.exception("no adapter for payment gateway %s; refund %s stays %s", payment.payment_gateway_id, refund.id,
                             refund.status)
            continue
        result = submit_refund(refund, adapter, payment.gateway_ref_number, look_up_first=True)
        with session_scope() as session:
            settle_refund(session=session, refund_id=refund.id, result=result, order_summary_id=order_summary_id)
            after = session.get(Refund, refund.id)
        status = RefundStatus(after.status).value
        resolved[status] = resolved.get(status, 0) + 1
        if after.status != refund.status:  # an answer still unknown tells nothing new
            emit_refund_event(after, after.status.lower(), order_summary_id=order_summary_id)
        logger.info("refund %s: %s -> %s", refund.id, refund.status, after.status)
    progress.update(len(stuck), len(stuck))
    return ResolveRefundsOutput(examined=len(stuck), skipped_running=skipped, resolved=resolved)
