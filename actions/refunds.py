"""Refund mechanics shared by every action that refunds: send one refund to its gateway,
record the answer, tell Prefect about it.

* ``submit_refund``: one gateway call with the refund's idempotency key; anything
  unexpected is an *unknown* outcome, never a failure (the gateway may have acted).
* ``settle_refund``: the answer, in one transaction under the order's lock: Processed
  moves PendingRefund to Refunded; Failed releases it (back to the credit memo); Unknown
  keeps it reserved. The PaymentGatewayLog row written with the refund is completed.
  ``record_gateway_result`` is its writes alone, for callers that lock and read in bulk.
* ``send_refund``: the gateway call for one reserved refund, its adapter built once per gateway.
* ``send_and_settle``: both, for one reserved refund, with its gateway looked up.
* ``emit_refund_event``: a Prefect event per state (``om.refund.<state>``).
"""

from __future__ import annotations

import json
import logging

from prefect import get_run_logger
from sqlmodel import Session, select

from db.announcements import publish_now
from db.engine import session_scope
from db.ledger import add_process_exception, complete_refund, gateway_log_for, gateway_of, lock_order_summary
from db.models import (
    InteractionStatus, OrderPaymentSummary, Payment, PaymentGateway, PaymentGatewayLog, Refund, RefundStatus,
)
from db.outbox import UPDATED, record_refund_event
from db.record_events import refund_changed
from db.types import utcnow
from domain.money import quantize
from gateways.contract import GatewayOutcome, GatewayResult, PaymentGatewayAdapter, RefundCommand
from gateways.registry import GatewayAdapters
from gateways.send_guard import ensure_may_send


def submit_refund(
    refund: Refund, adapter: PaymentGatewayAdapter, charge_reference: str, *, look_up_first: bool = False
) -> GatewayResult:
    """Call the gateway once. Anything unexpected counts as an unknown outcome.

    With ``look_up_first`` (a resumed operation, which may have crashed after the gateway
    acted) the gateway is asked about the key before anything is sent again, so even a
    gateway that ignores idempotency keys refunds once. Nothing is sent once this process
    no longer holds the operation (:mod:`gateways.send_guard`): that raises.
    """
    command = RefundCommand(
        idempotency_key=refund.idempotency_key, charge_reference=charge_reference,
        amount=quantize(refund.amount, refund.currency_iso_code, strict=False),
        currency=refund.currency_iso_code,
        metadata={"refund_id": refund.id, "order_payment_summary_id": refund.order_payment_summary_id},
    )
    try:
        if look_up_first and (known := adapter.lookup_refund(command)) is not None:
            return known
    except Exception as exc:  # noqa: BLE001 - a failed lookup tells nothing: unknown
        get_run_logger().exception("gateway lookup for refund %s raised; its outcome is unknown", refund.id)
        return GatewayResult(outcome=GatewayOutcome.TIMEOUT, message=f"{type(exc).__name__}: {exc}")
    ensure_may_send()  # raises, sending nothing, once this process no longer holds the operation
    try:
        return adapter.refund(command)
    except Exception as exc:  # noqa: BLE001 - the gateway may have acted: unknown, never failed
        get_run_logger().exception("gateway call for refund %s raised; its outcome is unknown", refund.id)
        return GatewayResult(outcome=GatewayOutcome.TIMEOUT, message=f"{type(exc).__name__}: {exc}")


_SF_RESULT = {
    GatewayOutcome.APPROVED: ("Success", InteractionStatus.SUCCESS, RefundStatus.PROCESSED),
    GatewayOutcome.DECLINED: ("Decline", InteractionStatus.FAILED, RefundStatus.FAILED),
    GatewayOutcome.ERROR: ("SystemError", InteractionStatus.FAILED, RefundStatus.FAILED),
    GatewayOutcome.TIMEOUT: ("Indeterminate", InteractionStatus.TIMEOUT, RefundStatus.UNKNOWN),
}


def settle_refund(*, session: Session, refund_id: str, result: GatewayResult, order_summary_id: str) -> str | None:
    """Record the gateway's answer (one transaction). Returns a ProcessException id, if any."""
    lock_order_summary(session, order_summary_id)
    refund = session.exec(select(Refund).where(Refund.id == refund_id).with_for_update()).one()
    return record_gateway_result(session, refund, result, order_summary_id)


def record_gateway_result(
    session: Session, refund: Refund, result: GatewayResult, order_summary_id: str, *, log: PaymentGatewayLog | None = None
) -> str | None:
    """``settle_refund``'s writes, for a caller that holds the order's lock and read ``refund``
    (and its gateway ``log`` row, if given) under it. Returns a ProcessException id, if any."""
    sf_result_code, interaction_status, refund_status = _SF_RESULT[result.outcome]
    if refund.status not in (RefundStatus.PENDING, RefundStatus.UNKNOWN):
        return None  # settled already (a concurrent resolver got here first)
    if refund.status == RefundStatus.UNKNOWN and refund_status == RefundStatus.UNKNOWN:
        return None  # still unknown: nothing new to record
    log = log or gateway_log_for(session, refund)
    log.interaction_status = interaction_status
    log.sf_result_code = sf_result_code
    log.gateway_result_code = result.result_code
    log.gateway_message = result.message
    log.gateway_ref_number = result.gateway_reference
    log.request = json.dumps(result.request, default=str)
    log.response = json.dumps(result.response, default=str)
    refund.status = refund_status
    refund.revision += 1
    refund.gateway_ref_number = result.gateway_reference
    refund.gateway_result_code = result.result_code
    refund.sf_result_code = sf_result_code
    refund.gateway_message = result.message
    refund.last_modified_date = utcnow()
    session.add_all([log, refund])
    record_refund_event(session, refund, UPDATED)
    if refund_status is RefundStatus.PROCESSED:
        complete_refund(session, refund, succeeded=True)
        return None
    amount = f"{quantize(refund.amount, refund.currency_iso_code, strict=False)} {refund.currency_iso_code}"
    if refund_status is RefundStatus.FAILED:
        complete_refund(session, refund, succeeded=False)
        message = f"Refund of {amount} failed at the gateway: {result.result_code}"
    else:
        message = f"Refund of {amount}: gateway outcome unknown; resolve before retrying"
    exception = add_process_exception(
        session, attached_to_id=refund.id, order_summary_id=order_summary_id, message=message,
        description=result.message, background_operation_id=refund.background_operation_id,
    )
    return exception.id


def send_and_settle(refund: Refund, order_summary_id: str, adapters: GatewayAdapters, *, resuming: bool) -> tuple[GatewayResult, str | None]:
    """Send one reserved (Pending) refund to its gateway (``send_refund``) and record the
    answer. Returns the gateway's result and a ProcessException id, if one was filed."""
    with session_scope() as session:
        payment = session.get(Payment, refund.payment_id)
        gateway = gateway_of(session, payment)  # None: an External payment (no gateway is called)
    result = send_refund(refund, payment, gateway, adapters, resuming=resuming)
    with session_scope() as session:
        exception_id = settle_refund(session=session, refund_id=refund.id, result=result, order_summary_id=order_summary_id)
    return result, exception_id


def send_refund(
    refund: Refund, payment: Payment, gateway: PaymentGateway | None, adapters: GatewayAdapters, *, resuming: bool
) -> GatewayResult:
    """Send one reserved refund of ``payment`` through ``gateway``; record nothing.

    ``gateway`` None (an External payment, ``db.ledger.gateway_of``) gets the External
    adapter: nothing is called, the refund is approved with result code External. A gateway
    that cannot be configured is an error (nothing was sent), unless the run is resuming an
    earlier one, which may have sent it: then the outcome is unknown.
    """
    try:
        adapter = adapters.for_gateway(gateway)
    except Exception as exc:  # noqa: BLE001 - after the reservation nothing may fail the operation
        get_run_logger().exception("no adapter for payment gateway %s", gateway.id if gateway else None)
        return GatewayResult(
            outcome=GatewayOutcome.TIMEOUT if resuming else GatewayOutcome.ERROR,
            result_code="gateway_configuration_error", message=f"{type(exc).__name__}: {exc}",
        )
    return submit_refund(refund, adapter, payment.gateway_ref_number, look_up_first=resuming)


def emit_refund_event(refund: Refund, what: str, *, order_summary_id: str | None = None) -> None:
    """``om.refund.<what>`` (pending, processed, failed, unknown, reversed), once per refund
    and state: telling it again (a resumed run) carries the same event id. Never raises:
    the refund it tells of has moved already."""
    try:
        if order_summary_id is None:
            with session_scope() as session:
                summary = session.get(OrderPaymentSummary, refund.order_payment_summary_id)
                order_summary_id = summary.order_summary_id if summary else None
        publish_now(refund_changed(refund, what, order_summary_id=order_summary_id))
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).exception("could not tell om.refund.%s for refund %s", what, refund.id)
