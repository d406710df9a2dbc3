"""Refund a payment (seeds 002 and 003): by charge (payment) id, outside the credit-memo flow.

* ``payment_refundability``: whether the payment can be refunded now, between which
  amounts, or why not (domain/refundability.py).
* ``reserve_payment_refund``: under the order summary's lock, in one transaction: the
  previouslyRefundedAmount guard, the refundability check, the Refund row (Pending, with
  its idempotency key), the amount held in PendingRefundAmount, an Initiated gateway log.
  Several partial refunds are fine while the total, pending ones included, stays within
  what was captured. A direct debit needs an override reason, which is recorded.
* ``send_payment_refund``: the gateway call and its settlement (actions/refunds.py), in the
  background operation (a flow run) whose id the refund records.
* ``reverse_payment_refund``: the gateway reports a refund failed after it succeeded:
  the refunded amounts are unwound, the refund is Reversed and a person is told.

Statuses as seed 003 names them: PENDING (Pending, or Unknown after a timeout),
SUCCEEDED (Processed), FAILED, REVERSED.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from prefect import get_run_logger, task
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema
from sqlmodel import Session, select

from actions.artifacts import link, money, publish
from actions.fields import CurrencyCode, LongText, RequiredShortText, ShortText, ActionModel, MoneyAmount, RecordId, drop_default
from actions.refunds import emit_refund_event, send_and_settle
from db.engine import session_scope
from db.ids import new_id
from db.ledger import add_process_exception, gateway_of, get_or_raise, lock_order_summary, reserve_refund
from db.outbox import CREATED, UPDATED, record_refund_event
from db.models import (
    REFUND_API_STATUS, InteractionStatus, InteractionType, OrderPaymentSummary, Payment, PaymentGatewayLog,
    PaymentMethodType, PaymentStatus, Refund, RefundStatus,
)
from db.types import utcnow
from domain.errors import (
    CurrencyMismatchError, InvalidInputError, NotRefundableError, PreviouslyRefundedAmountMismatchError,
    RefundAmountOutOfRangeError,
)
from domain.money import quantize
from domain.refundability import NonRefundableReason, PaymentFacts, Refundability, refundability
from gateways.registry import GatewayAdapters

PAYMENT_FUNDING = "Payment"  # Refund.funding_source of a payment-level refund


def send_key(refund_id: str) -> str:
    """The Prefect idempotency key of the flow run sending a refund the REST facade recorded."""
    return f"send-{refund_id}"




class RefundPaymentInput(ActionModel):
    """Refund one payment (a charge): all that remains, or a part of it."""

    charge_id: RecordId = Field(title="Charge Id", description="The payment to refund (0a3...).")
    amount: MoneyAmount | SkipJsonSchema[None] = Field(
        default=None, title="Amount", description="How much; blank refunds all that can be refunded.",
        json_schema_extra=drop_default,
    )
    currency_code: CurrencyCode | SkipJsonSchema[None] = Field(
        default=None, title="Currency Code",
        description="If given, must be the payment's currency (ISO 4217).", json_schema_extra=drop_default,
    )
    reason: ShortText | SkipJsonSchema[None] = Field(
        default=None, title="Reason", description="Why, for the record.", json_schema_extra=drop_default)
    note: LongText | SkipJsonSchema[None] = Field(
        default=None, title="Note", description="A note for the record.", json_schema_extra=drop_default)
    previously_refunded_amount: MoneyAmount | SkipJsonSchema[None] = Field(
        default=None, title="Previously Refunded Amount", json_schema_extra=drop_default,
        description="What you saw refunded (succeeded refunds) before asking; refused if it changed since.",
    )
    direct_debit_override_reason: RequiredShortText | SkipJsonSchema[None] = Field(
        default=None, title="Direct Debit Override Reason", json_schema_extra=drop_default,
        description="Refund a direct debit anyway (the payer's bank may refund it too): why.",
    )


class RefundabilityOutput(ActionModel):
    charge_id: str
    currency_code: str
    refundable: bool
    min_refund_amount: Decimal
    max_refund_amount: Decimal
    previously_refunded_amount: Decimal
    non_refundable_reason: str | None
    requires_direct_debit_override: bool


class PaymentRefundOutput(ActionModel):
    """A payment-level refund, as the refunds API shows it."""

    id: str
    charge_id: str
    order_payment_summary_id: str
    amount: Decimal
    currency_code: str
    status: str = Field(description="PENDING, SUCCEEDED, FAILED or REVERSED.")
    reason: str | None
    note: str | None
    direct_debit_override_reason: str | None
    gateway_reference_number: str | None
    gateway_result_code: str | None
    background_operation_id: str | None
    revision: int
    created_date: datetime
    updated_date: datetime


def refund_output(refund: Refund) -> PaymentRefundOutput:
    return PaymentRefundOutput(
        id=refund.id, charge_id=refund.payment_id, order_payment_summary_id=refund.order_payment_summary_id,
        amount=quantize(refund.amount, refund.currency_iso_code, strict=False), currency_code=refund.currency_iso_code,
        status=REFUND_API_STATUS[refund.status], reason=refund.reason, note=refund.note,
        direct_debit_override_reason=refund.direct_debit_override_reason, gateway_reference_number=refund.gateway_ref_number,
        gateway_result_code=refund.gateway_result_code, background_operation_id=refund.background_operation_id,
        revision=refund.revision, created_date=refund.created_date, updated_date=refund.last_modified_date,
    )


def _facts(session: Session, payment: Payment, *, caller_may_refund: bool) -> PaymentFacts:
    """What refundability decides on. An External payment (``gateway_of`` None) calls no
    gateway, so no gateway's rule applies to it (any method, no Active status, no one-at-a-time
    limit); the direct-debit rule, about the payer's bank, still does."""
    gateway = gateway_of(session, payment)
    return PaymentFacts(
        amount=payment.amount, currency=payment.currency_iso_code, captured=payment.status == PaymentStatus.PROCESSED,
        refunded=payment.refunded_amount, pending_refund=payment.pending_refund_amount,
        direct_debit=payment.payment_method_type == PaymentMethodType.DIRECT_DEBIT,
        method_supported=gateway is None or gateway.refunds_method(payment.payment_method_type),
        gateway_active=gateway is None or gateway.status == "Active",
        one_refund_at_a_time=gateway is not None and gateway.one_refund_at_a_time,
        caller_may_refund=caller_may_refund, in_summary=payment.order_payment_summary_id is not None,
    )


def payment_refundability(*, session: Session, charge_id: str, caller_may_refund: bool = True) -> RefundabilityOutput:
    """Whether the payment can be refunded now (a read; nothing is locked or written)."""
    payment = get_or_raise(session, Payment, charge_id)
    answer = refundability(_facts(session, payment, caller_may_refund=caller_may_refund))
    return _refundability_output(payment, answer)


def _refundability_output(payment: Payment, answer: Refundability) -> RefundabilityOutput:
    currency = payment.currency_iso_code
    return RefundabilityOutput(
        charge_id=payment.id, currency_code=currency, refundable=answer.refundable,
        min_refund_amount=quantize(answer.min_refund_amount, currency, strict=False),
        max_refund_amount=quantize(answer.max_refund_amount, currency, strict=False),
        previously_refunded_amount=quantize(answer.previously_refunded_amount, currency, strict=False),
        non_refundable_reason=answer.reason.value if answer.reason else None,
        requires_direct_debit_override=answer.needs_override,
    )


def reserve_payment_refund(*, session: Session, request: RefundPaymentInput, operation_id: str | None = None) -> Refund:
    """Check and write the refund Pending, holding its amount (see the module docstring).
    Within an operation it happens once: a re-run gets the refund it made."""
    payment = get_or_raise(session, Payment, request.charge_id)
    if payment.order_payment_summary_id is None:  # rolls up nowhere until a summary takes it
        reason = NonRefundableReason.NOT_IN_ORDER_PAYMENT_SUMMARY.value
        raise NotRefundableError(f"payment {payment.id} cannot be refunded now: {reason}", reason)
    ops = session.get(OrderPaymentSummary, payment.order_payment_summary_id)
    lock_order_summary(session, ops.order_summary_id)
    if operation_id and (done := session.exec(select(Refund).where(
            Refund.background_operation_id == operation_id, Refund.funding_source == PAYMENT_FUNDING)).first()):
        return done
    payment = get_or_raise(session, Payment, request.charge_id, for_update=True)
    ops = get_or_raise(session, OrderPaymentSummary, payment.order_payment_summary_id, for_update=True)
    currency = payment.currency_iso_code
    if request.currency_code and request.currency_code.upper() != currency:
        raise CurrencyMismatchError(f"payment {payment.id} is in {currency}, not {request.currency_code.upper()}")
    if request.previously_refunded_amount is not None:
        # A refund still in flight counts as "another refund since you looked": a client
        # retrying after a network error (seed 003) must not start a second one.
        if quantize(request.previously_refunded_amount, currency) != payment.refunded_amount:
            raise PreviouslyRefundedAmountMismatchError(
                f"previouslyRefundedAmount {request.previously_refunded_amount} does not match the "
                f"{quantize(payment.refunded_amount, currency, strict=False)} refunded so far; "
                "check the payment's refunds and ask again")
        if payment.pending_refund_amount > 0:
            raise PreviouslyRefundedAmountMismatchError(
                f"a refund of {quantize(payment.pending_refund_amount, currency, strict=False)} on payment {payment.id} is "
                "still in progress; wait for it (or query the refunds) and ask again")
    answer = refundability(_facts(session, payment, caller_may_refund=True),
                           override=request.direct_debit_override_reason is not None)
    if not answer.refundable:
        raise NotRefundableError(f"payment {payment.id} cannot be refunded now: {answer.reason.value}", answer.reason.value)
    amount = answer.max_refund_amount if request.amount is None else quantize(request.amount, currency)
    if not answer.min_refund_amount <= amount <= answer.max_refund_amount:
        raise RefundAmountOutOfRangeError(
            f"amount {amount} is outside what payment {payment.id} can refund now "
            f"({answer.min_refund_amount}..{quantize(answer.max_refund_amount, currency, strict=False)})")
    refund_id = new_id("Refund")
    refund = Refund(
        id=refund_id, order_payment_summary_id=ops.id, payment_id=payment.id, amount=amount, currency_iso_code=currency,
        funding_source=PAYMENT_FUNDING, idempotency_key=f"om-refund-{refund_id}", background_operation_id=operation_id,
        processing_mode=payment.processing_mode, payment_gateway_id=payment.payment_gateway_id,
        reason=request.reason, note=request.note,
        direct_debit_override_reason=request.direct_debit_override_reason if answer.needs_override else None,
    )
    reserve_refund(session, ops, payment, amount)
    session.add_all([refund, PaymentGatewayLog(
        id=new_id("PaymentGatewayLog"), payment_gateway_id=payment.payment_gateway_id, reference_entity_id=refund_id,
        interaction_type=InteractionType.REFUND, sf_ref_number=refund.idempotency_key, background_operation_id=operation_id,
    )])
    session.flush()
    record_refund_event(session, refund, CREATED)
    return refund


def send_reserved_refund(refund_id: str, *, resuming: bool) -> Refund:
    """Send a Pending payment-level refund (once: a settled one is left as it is)."""
    with session_scope() as session:
        refund = get_or_raise(session, Refund, refund_id)
        order_summary_id = session.get(OrderPaymentSummary, refund.order_payment_summary_id).order_summary_id
    if refund.status == RefundStatus.PENDING:
        emit_refund_event(refund, "pending", order_summary_id=order_summary_id)
        send_and_settle(refund, order_summary_id, GatewayAdapters(), resuming=resuming)
    with session_scope() as session:
        refund = session.get(Refund, refund_id)
    emit_refund_event(refund, refund.status.lower(), order_summary_id=order_summary_id)
    return refund


def reverse_refund(*, session: Session, refund_id: str, gateway_message: str | None = None) -> Refund:
    """The gateway reports a refund failed after it succeeded: unwind RefundedAmount on the
    payment and its summary, mark it Reversed, log the gateway's word, tell a person."""
    refund = get_or_raise(session, Refund, refund_id)
    ops = session.get(OrderPaymentSummary, refund.order_payment_summary_id)
    lock_order_summary(session, ops.order_summary_id)
    refund = get_or_raise(session, Refund, refund_id, for_update=True)
    if refund.status == RefundStatus.REVERSED:
        return refund
    if refund.status != RefundStatus.PROCESSED:
        raise InvalidInputError(f"refund {refund.id} is {refund.status}: only a succeeded refund can be reversed")
    ops = get_or_raise(session, OrderPaymentSummary, refund.order_payment_summary_id, for_update=True)
    payment = get_or_raise(session, Payment, refund.payment_id, for_update=True)
    ops.refunded_amount -= refund.amount
    payment.refunded_amount -= refund.amount
    if refund.credit_memo_id and refund.funding_source == "CreditMemo":
        from db.models import CreditMemo

        memo = get_or_raise(session, CreditMemo, refund.credit_memo_id, for_update=True)
        memo.balance += refund.amount  # owed to the customer again
        session.add(memo)
    refund.status = RefundStatus.REVERSED
    refund.revision += 1
    refund.gateway_message = gateway_message or refund.gateway_message
    refund.last_modified_date = utcnow()
    session.add_all([ops, payment, refund, PaymentGatewayLog(
        id=new_id("PaymentGatewayLog"), payment_gateway_id=payment.payment_gateway_id, reference_entity_id=refund.id,
        interaction_type=InteractionType.REFUND, interaction_status=InteractionStatus.FAILED, sf_result_code="Reversed",
        sf_ref_number=f"{refund.idempotency_key}:reversal", gateway_message=gateway_message,
    )])
    add_process_exception(
        session, attached_to_id=refund.id, order_summary_id=ops.order_summary_id,
        message=f"Refund of {quantize(refund.amount, refund.currency_iso_code, strict=False)} {refund.currency_iso_code} "
                "was reversed by the gateway: the customer has not been paid back",
        description=gateway_message,
    )
    session.flush()
    record_refund_event(session, refund, UPDATED)
    return refund


@task(name="reserve-payment-refund", persist_result=False)
def reserve_payment_refund_task(request: RefundPaymentInput, operation_id: str | None = None) -> PaymentRefundOutput:
    """Check and record a payment refund as PENDING, holding its amount (no gateway call yet)."""
    with session_scope() as session:
        refund = reserve_payment_refund(session=session, request=request, operation_id=operation_id)
        output = refund_output(refund)
    get_run_logger().info("refund %s of %s %s reserved on payment %s", output.id, output.amount, output.currency_code,
                          output.charge_id)
    return output


@task(name="send-payment-refund", persist_result=False)
def send_payment_refund(refund_id: str, resuming: bool = False) -> PaymentRefundOutput:
    """Send a reserved payment refund to its gateway and record the answer.

    Example:
        ```python
        from prefect import flow
        from actions.payment_refunds import RefundPaymentInput, reserve_payment_refund_task, send_payment_refund

        @flow
        def refund_charge(charge_id: str):
            reserved = reserve_payment_refund_task(RefundPaymentInput(charge_id=charge_id))
            return send_payment_refund(reserved.id)
        ```
    """
    refund = send_reserved_refund(refund_id, resuming=resuming)
    get_run_logger().info("refund %s: %s", refund.id, REFUND_API_STATUS[refund.status])
    output = refund_output(refund)
    publish(record="refund", record_id=output.id, title="Refund a payment", rows=[{
        "Refund": output.id, "Charge": output.charge_id, "Amount": money(output.amount, output.currency_code),
        "Status": output.status, "Gateway Reference": output.gateway_reference_number,
        "Gateway Result": output.gateway_result_code, "Reason": output.reason}],
        summary=f"- Refund {link('Refund', output.id)} of payment {link('Payment', output.charge_id)}: "
                f"**{money(output.amount, output.currency_code)}** {output.status}")
    return output


@task(name="reverse-payment-refund", persist_result=False)
def reverse_payment_refund(refund_id: str, gateway_message: str | None = None) -> PaymentRefundOutput:
    """Record that the gateway reversed a succeeded refund (unwinds the refunded amounts)."""
    with session_scope() as session:
        refund = reverse_refund(session=session, refund_id=refund_id, gateway_message=gateway_message)
        output = refund_output(refund)
    emit_refund_event(refund, "reversed")
    get_run_logger().warning("refund %s reversed by the gateway: %s", refund_id, gateway_message)
    return output
