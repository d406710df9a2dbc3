"""Resolve Captures: settle captures left Draft (an Ensure Funds operation died before
sending or settling, or the gateway timed out) by asking the gateway, never retrying blind.

Like resolve_refunds: if the gateway knows the capture's key, its record settles it; if
it never saw the key, the capture is sent now with the same key.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import get_run_logger, task
from pydantic import Field
from sqlmodel import col, select

from actions.ensure_funds import settle_capture, submit_capture
from actions.fields import ActionModel
from actions.resolve_refunds import mark_resolve_attempted, operation_is_running
from db.engine import session_scope
from db.ledger import gateway_of
from db.models import OrderPaymentSummary, Payment, PaymentAuthorization, PaymentLineInvoice, PaymentStatus
from db.types import utcnow
from gateways.registry import GatewayAdapters


class ResolveCapturesOutput(ActionModel):
    examined: int = Field(description="Draft captures old enough to resolve.")
    skipped_running: int = Field(description="Left alone because their operation is still running.")
    resolved: dict[str, int] = Field(description="How many captures ended in each status.")


@task(name="resolve-captures", persist_result=False)
def resolve_captures(older_than_seconds: int = 300, limit: int = 500) -> ResolveCapturesOutput:
    """Settle Draft captures older than ``older_than_seconds`` by asking their gateway, the
    least recently asked about first (see resolve_refunds).

    Example:
        ```python
        from prefect import flow
        from actions.resolve_captures import resolve_captures

        @flow
        def nightly_resolution():
            return resolve_captures(older_than_seconds=600)
        ```
    """
    logger = get_run_logger()
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with session_scope() as session:
        stuck = list(session.exec(
            select(Payment, PaymentLineInvoice.background_operation_id)
            .join(PaymentLineInvoice, PaymentLineInvoice.payment_id == Payment.id)
            .where(Payment.status == PaymentStatus.DRAFT, col(Payment.payment_authorization_id).is_not(None))
            .where(Payment.created_date <= cutoff)
            .order_by(col(Payment.resolve_attempted_at).asc().nulls_first(), col(Payment.created_date), col(Payment.id))
            .limit(limit)
        ))
    adapters = GatewayAdapters()
    resolved: dict[str, int] = {}
    skipped = 0
    for payment, operation_id in stuck:
        mark_resolve_attempted(Payment, payment.id)
        if operation_is_running(operation_id):
            skipped += 1
            continue
        with session_scope() as session:
            gateway = gateway_of(session, payment)  # None: an External authorization's capture
            authorization = session.get(PaymentAuthorization, payment.payment_authorization_id)
            order_summary_id = session.get(OrderPaymentSummary, payment.order_payment_summary_id).order_summary_id
        try:
            adapter = adapters.for_gateway(gateway)
        except Exception:  # noqa: BLE001 - leave it for the next run; a person sees the log
            logger.exception("no adapter for payment gateway %s; capture %s stays Draft", payment.payment_gateway_id, payment.id)
            continue
        result = submit_capture(payment, adapter, authorization.gateway_ref_number, look_up_first=True)
        with session_scope() as session:
            settle_capture(session=session, payment_id=payment.id, result=result, order_summary_id=order_summary_id)
            status = PaymentStatus(session.get(Payment, payment.id).status).value
        resolved[status] = resolved.get(status, 0) + 1
        logger.info("capture %s: Draft -> %s", payment.id, status)
    return ResolveCapturesOutput(examined=len(stuck), skipped_running=skipped, resolved=resolved)
