"""Ensure Funds: pay an invoice's balance from the order's money (issue 3, DESIGN.md §4).

Under the order summary's lock, in one transaction: the plan is made (domain/funds.py);
captured payments' unapplied balances are applied to the invoice (PaymentLineInvoice,
Applied); each capture is written first as a Draft Payment with its idempotency key,
its amount held in PendingCaptureAmount (authorization and summary) and on the invoice
(a Pending PaymentLineInvoice), with an Initiated PaymentGatewayLog row. Only then is
the gateway called, once per capture. Approved: the payment is Processed and applied;
declined or error: it is Canceled, the holds released (the invoice owes it again) and
a ProcessException filed; timeout: it stays Draft with everything held, for a person
or a resolver to settle by asking the gateway. Gateway answers never fail the
operation; invalid input (unknown invoice, another order's, nothing owed, not enough
funds) does, and then nothing has been written.

A gateway that captures an authorization once and releases the rest (Stripe) gets one
capture per authorization: one already captured, or being captured, is not planned from
again.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, ClassVar

from prefect import get_run_logger, task
from pydantic import AfterValidator, Field
from pydantic.json_schema import SkipJsonSchema
from sqlmodel import Session, col, select

from actions.artifacts import link, money, publish
from actions.fields import ActionModel, RecordId, ShortText, drop_default
from db.announcements import announce
from db.engine import session_scope
from db.ids import new_id
from db.ledger import (
    add_process_exception, capture_key, gateway_of, get_or_raise, lock_order_summary, moves_money_outside, process_exception_ids_of,
)
from db.models import (
    Invoice, InteractionStatus, InteractionType, OrderPaymentSummary, OrderSummary, Payment, PaymentApplicationType,
    PaymentAuthorization, PaymentGateway, PaymentGatewayLog, PaymentLineInvoice, PaymentStatus, ProcessException,
)
from db.record_events import announce_invoice_paid, payment_captured
from db.types import utcnow
from domain.errors import CurrencyMismatchError, InvalidInputError
from domain.funds import FundsPlan, plan_funds
from domain.money import ZERO, quantize
from gateways.contract import CaptureCommand, GatewayOutcome, GatewayResult, PaymentGatewayAdapter
from gateways.registry import CAPTURES_ONCE, GatewayAdapters
from gateways.send_guard import ensure_may_send


def _no_sequence(value: str | None) -> str | None:
    # Salesforce types sequences as a String and does not say what it holds (60.0).
    if value is not None and value.strip():
        raise ValueError("payment sequencing is not supported: Salesforce does not document the format of this "
                         "String; send an empty string or omit it (the default plan: exact match, else largest)")
    return value


class EnsureFundsInput(ActionModel):
    """Ensure Funds Async Input: the invoice whose balance the order's money must pay."""

    SINCE: ClassVar[dict[str, str]] = {
        "isConsiderReservedBalanceAmount": "59.0", "isAllowPartial": "60.0", "sequences": "60.0"}
    """The API version each property appeared in (Connect REST's Ensure Funds Async Input)."""

    invoice_id: RecordId = Field(title="Invoice Id", description="Id of the invoice to pay (3tt...).")
    is_allow_partial: bool = Field(
        default=True, title="Allow Partial",
        description="Salesforce's (60.0). True: paid from as many payments and authorizations as it takes (exact "
                    "match, else largest). False: one payment's captured balance or one authorization must pay the "
                    "whole balance, else the request is refused (INSUFFICIENT_FUNDS) and nothing happens. Omitted: "
                    "true, what Ensure Funds did before 60.0.",
    )
    is_consider_reserved_balance_amount: bool | SkipJsonSchema[None] = Field(
        default=None, title="Consider Reserved Balance Amount",
        description="Salesforce's (59.0). Orders here hold no reserved balance, so true and false pay the same.",
        json_schema_extra=drop_default,
    )
    sequences: Annotated[ShortText, AfterValidator(_no_sequence)] | SkipJsonSchema[None] = Field(
        default=None, title="Sequences",
        description="Salesforce's payment sequence (60.0, a String whose format Salesforce does not document). Not "
                    "supported: only an empty string is accepted.",
        json_schema_extra=drop_default,
    )


class FundsApplication(ActionModel):
    payment_id: str
    amount: Decimal
    type: PaymentApplicationType


class CaptureResult(ActionModel):
    payment_id: str
    payment_authorization_id: str
    amount: Decimal
    status: PaymentStatus
    gateway_result_code: str | None = None


class EnsureFundsOutput(ActionModel):
    """What the operation did. (The REST answer is only the backgroundOperationId.)"""

    order_summary_id: str
    invoice_id: str
    currency_iso_code: str
    applications: list[FundsApplication]
    captures: list[CaptureResult]
    invoice_balance: Decimal = Field(description="What the invoice still owes after the operation.")
    process_exception_ids: list[str]


_capture_key = capture_key


def plan_funds_for(session: Session, order: OrderSummary, request: EnsureFundsInput, *, for_update: bool):
    """Read what the plan needs (locked when reserving) and make it. Writes nothing."""
    invoice = get_or_raise(session, Invoice, request.invoice_id, for_update=for_update)
    if invoice.order_summary_id != order.id:
        raise InvalidInputError(f"invoice {invoice.id} belongs to another order summary")
    if invoice.currency_iso_code != order.currency_iso_code:
        raise CurrencyMismatchError(f"invoice {invoice.id} is in {invoice.currency_iso_code}, the order in {order.currency_iso_code}")
    summaries = select(OrderPaymentSummary.id).where(OrderPaymentSummary.order_summary_id == order.id)
    payments_query = (select(Payment).where(col(Payment.order_payment_summary_id).in_(summaries))
                      .where(Payment.status == PaymentStatus.PROCESSED)
                      .order_by(col(Payment.created_date), col(Payment.id)))
    authorizations_query = (select(PaymentAuthorization).where(col(PaymentAuthorization.order_payment_summary_id).in_(summaries))
                            .order_by(col(PaymentAuthorization.created_date), col(PaymentAuthorization.id)))
    if for_update:
        payments_query, authorizations_query = payments_query.with_for_update(), authorizations_query.with_for_update()
    payments = list(session.exec(payments_query))
    authorizations = list(session.exec(authorizations_query))
    spent = captured_once(session, authorizations)
    unapplied = {
        p.id: max(ZERO, p.amount - p.applied_amount - p.refunded_amount - p.pending_refund_amount) for p in payments
    }
    plan = plan_funds(
        order.currency_iso_code, invoice.balance,
        {pid: amount for pid, amount in unapplied.items() if amount > 0},
        {a.id: a.capturable_amount for a in authorizations if a.capturable_amount > 0 and a.id not in spent},
        allow_partial=request.is_allow_partial,
    )
    return plan, invoice, {p.id: p for p in payments}, {a.id: a for a in authorizations}


def captured_once(session: Session, authorizations: list[PaymentAuthorization]) -> set[str]:
    """Those of ``authorizations`` whose gateway captures once (``CAPTURES_ONCE``) and that
    have a capture Processed or in flight (Draft): nothing more can be captured from them.
    An External authorization calls no gateway, so no gateway's rule limits it."""
    gateway_ids = {a.payment_gateway_id for a in authorizations if not moves_money_outside(a)}
    once = set(session.exec(select(PaymentGateway.id).where(
        col(PaymentGateway.id).in_(gateway_ids), col(PaymentGateway.gateway_provider).in_(CAPTURES_ONCE)))) if gateway_ids else set()
    candidates = [a.id for a in authorizations if not moves_money_outside(a) and a.payment_gateway_id in once]
    if not candidates:
        return set()
    return set(session.exec(select(Payment.payment_authorization_id).where(
        col(Payment.payment_authorization_id).in_(candidates),
        col(Payment.status).in_([PaymentStatus.DRAFT, PaymentStatus.PROCESSED]))))


def check_ensure_funds(*, session: Session, order_summary_id: str, request: EnsureFundsInput) -> FundsPlan:
    """Validate a request against the store without changing it (the facade's pre-check)."""
    order = get_or_raise(session, OrderSummary, order_summary_id)
    return plan_funds_for(session, order, request, for_update=False)[0]


def reserve_funds(*, session: Session, order_summary_id: str, request: EnsureFundsInput, operation_id: str) -> list[Payment]:
    """Apply captured balances and write the captures Draft, holding their amounts (one transaction)."""
    order = lock_order_summary(session, order_summary_id)
    plan, invoice, payments, authorizations = plan_funds_for(session, order, request, for_update=True)
    for payment_id, amount in plan.applications:
        payment = payments[payment_id]
        payment.applied_amount += amount
        invoice.balance -= amount
        session.add_all([payment, _application(payment.id, invoice, amount, PaymentApplicationType.APPLIED, operation_id)])
    captures = []
    for authorization_id, amount in plan.captures:
        authorization = authorizations[authorization_id]
        summary = session.get(OrderPaymentSummary, authorization.order_payment_summary_id)
        payment = Payment(
            id=new_id("Payment"), order_payment_summary_id=summary.id, payment_gateway_id=authorization.payment_gateway_id,
            processing_mode=authorization.processing_mode,
            amount=amount, status=PaymentStatus.DRAFT, type="Capture", payment_method_type=authorization.payment_method_type,
            currency_iso_code=order.currency_iso_code, payment_authorization_id=authorization.id,
        )
        authorization.pending_capture_amount += amount
        summary.pending_capture_amount += amount
        invoice.balance -= amount
        session.add_all([payment, authorization, summary])
        session.flush()  # the payment row exists before what refers to it
        session.add(_application(payment.id, invoice, amount, PaymentApplicationType.PENDING, operation_id))
        session.add(PaymentGatewayLog(
            id=new_id("PaymentGatewayLog"), payment_gateway_id=payment.payment_gateway_id, reference_entity_id=payment.id,
            interaction_type=InteractionType.CAPTURE, sf_ref_number=_capture_key(payment.id),
            background_operation_id=operation_id,
        ))
        captures.append(payment)
    session.add(invoice)
    session.flush()
    announce_invoice_paid(session, invoice)  # paid from captured balance alone, with no capture to wait for
    return captures


def _application(payment_id: str, invoice: Invoice, amount: Decimal, kind: PaymentApplicationType, operation_id: str):
    return PaymentLineInvoice(
        id=new_id("PaymentLineInvoice"), payment_id=payment_id, invoice_id=invoice.id, amount=amount,
        currency_iso_code=invoice.currency_iso_code, type=kind, background_operation_id=operation_id,
    )


def submit_capture(payment: Payment, adapter: PaymentGatewayAdapter, authorization_reference: str, *,
                   look_up_first: bool = False) -> GatewayResult:
    """One gateway call; anything unexpected is an unknown outcome (the gateway may have acted).
    Nothing is sent once this process no longer holds the operation (:mod:`gateways.send_guard`)."""
    key = _capture_key(payment.id)
    command = CaptureCommand(
        idempotency_key=key, authorization_reference=authorization_reference,
        amount=quantize(payment.amount, payment.currency_iso_code, strict=False), currency=payment.currency_iso_code,
        metadata={"payment_id": payment.id, "payment_authorization_id": payment.payment_authorization_id or ""},
    )
    try:
        if look_up_first and (known := adapter.lookup_capture(command)) is not None:
            return known
    except Exception as exc:  # noqa: BLE001 - a failed lookup tells nothing: unknown
        get_run_logger().exception("gateway lookup for capture %s raised; its outcome is unknown", payment.id)
        return GatewayResult(outcome=GatewayOutcome.TIMEOUT, message=f"{type(exc).__name__}: {exc}")
    ensure_may_send()  # raises, sending nothing, once this process no longer holds the operation
    try:
        return adapter.capture(command)
    except Exception as exc:  # noqa: BLE001
        get_run_logger().exception("gateway call for capture %s raised; its outcome is unknown", payment.id)
        return GatewayResult(outcome=GatewayOutcome.TIMEOUT, message=f"{type(exc).__name__}: {exc}")


_CAPTURE_RESULT = {
    GatewayOutcome.APPROVED: ("Success", InteractionStatus.SUCCESS),
    GatewayOutcome.DECLINED: ("Decline", InteractionStatus.FAILED),
    GatewayOutcome.ERROR: ("SystemError", InteractionStatus.FAILED),
    GatewayOutcome.TIMEOUT: ("Indeterminate", InteractionStatus.TIMEOUT),
}


def settle_capture(*, session: Session, payment_id: str, result: GatewayResult, order_summary_id: str) -> str | None:
    """Record the gateway's answer to a capture (one transaction). Returns a ProcessException id, if any."""
    lock_order_summary(session, order_summary_id)
    payment = session.exec(select(Payment).where(Payment.id == payment_id).with_for_update()).one()
    if payment.status != PaymentStatus.DRAFT:
        return None  # settled already
    log = session.exec(select(PaymentGatewayLog).where(PaymentGatewayLog.sf_ref_number == _capture_key(payment.id))).one()
    application = session.exec(select(PaymentLineInvoice).where(PaymentLineInvoice.payment_id == payment.id)).one()
    authorization = session.get(PaymentAuthorization, payment.payment_authorization_id)
    summary = session.get(OrderPaymentSummary, payment.order_payment_summary_id)
    sf_result_code, interaction_status = _CAPTURE_RESULT[result.outcome]
    log.interaction_status, log.sf_result_code = interaction_status, sf_result_code
    log.gateway_result_code, log.gateway_message, log.gateway_ref_number = result.result_code, result.message, result.gateway_reference
    log.request, log.response = json.dumps(result.request, default=str), json.dumps(result.response, default=str)
    session.add(log)
    amount = f"{quantize(payment.amount, payment.currency_iso_code, strict=False)} {payment.currency_iso_code}"
    if result.outcome is GatewayOutcome.TIMEOUT:
        if session.exec(select(ProcessException.id).where(ProcessException.attached_to_id == payment.id)).first():
            return None  # still unknown, and a person was told already: nothing new
        message = f"Capture of {amount}: gateway outcome unknown; resolve before retrying"
    else:
        authorization.pending_capture_amount -= payment.amount
        summary.pending_capture_amount -= payment.amount
        if result.outcome is GatewayOutcome.APPROVED:
            payment.status, payment.gateway_ref_number = PaymentStatus.PROCESSED, result.gateway_reference
            payment.applied_amount += payment.amount
            authorization.captured_amount += payment.amount
            summary.captured_amount += payment.amount
            application.type = PaymentApplicationType.APPLIED
            announce(session, lambda: payment_captured(payment, order_summary_id=order_summary_id,
                                                       invoice_id=application.invoice_id))
            announce_invoice_paid(session, session.get(Invoice, application.invoice_id))
        else:
            payment.status = PaymentStatus.CANCELED
            application.type = PaymentApplicationType.UNAPPLIED
            invoice = session.get(Invoice, application.invoice_id)
            invoice.balance += payment.amount  # the invoice owes it again
            session.add(invoice)
        application.applied_date = utcnow()
        session.add_all([payment, authorization, summary, application])
        if result.outcome is GatewayOutcome.APPROVED:
            return None
        message = f"Capture of {amount} failed at the gateway: {result.result_code}"
    exception = add_process_exception(
        session, attached_to_id=payment.id, order_summary_id=order_summary_id, message=message,
        description=result.message, background_operation_id=application.background_operation_id,
    )
    return exception.id


@task(name="ensure-funds", retries=0, persist_result=False)
def ensure_funds(order_summary_id: str, request: EnsureFundsInput, operation_id: str) -> EnsureFundsOutput:
    """Pay an invoice's balance from the order's captured balance, then by capturing authorizations.

    Args:
        order_summary_id: the order summary the invoice belongs to.
        request: the Ensure Funds Async input (the invoice).
        operation_id: the background operation (flow run) id; a re-run of the same
            operation finishes its own captures instead of planning anew.

    Returns:
        The applications and captures made, and what the invoice still owes.

    Raises:
        InvalidInputError: unknown or foreign invoice, nothing owed, or not enough funds
            (INSUFFICIENT_FUNDS; with ``is_allow_partial=False``, no single payment or
            authorization covering the whole balance); nothing was written.

    Example:
        ```python
        from prefect import flow
        from actions.ensure_funds import EnsureFundsInput, ensure_funds

        @flow
        def pay_invoice(order_summary_id: str, invoice_id: str):
            return ensure_funds(order_summary_id, EnsureFundsInput(invoice_id=invoice_id), "manual-run-1")
        ```
    """
    logger = get_run_logger()
    with session_scope() as session:
        lock_order_summary(session, order_summary_id)  # resume check and reservation under one lock
        planned = list(session.exec(select(PaymentLineInvoice).where(PaymentLineInvoice.background_operation_id == operation_id)))
        resuming = bool(planned)
        if resuming:
            captures = [session.get(Payment, a.payment_id) for a in planned if a.type == PaymentApplicationType.PENDING]
            logger.info("operation %s already planned; finishing %d captures", operation_id, len(captures))
        else:
            captures = reserve_funds(session=session, order_summary_id=order_summary_id, request=request, operation_id=operation_id)
            logger.info("reserved %d captures for invoice %s", len(captures), request.invoice_id)

    adapters = GatewayAdapters()
    for payment in captures:
        with session_scope() as session:
            gateway = gateway_of(session, payment)  # None: an External authorization (no gateway is called)
            authorization = session.get(PaymentAuthorization, payment.payment_authorization_id)
        try:
            adapter = adapters.for_gateway(gateway)
        except Exception as exc:  # noqa: BLE001 - after the reservation nothing may fail the operation
            logger.exception("no adapter for payment gateway %s", payment.payment_gateway_id)
            result = GatewayResult(outcome=GatewayOutcome.TIMEOUT if resuming else GatewayOutcome.ERROR,
                                   result_code="gateway_configuration_error", message=f"{type(exc).__name__}: {exc}")
        else:
            result = submit_capture(payment, adapter, authorization.gateway_ref_number, look_up_first=resuming)
        with session_scope() as session:
            settle_capture(session=session, payment_id=payment.id, result=result, order_summary_id=order_summary_id)
        logger.info("capture %s of %s: %s %s", payment.id, payment.amount, result.outcome.value, result.result_code or "")
    output = _output(order_summary_id, request, operation_id)
    publish_funds(output)
    return output


def publish_funds(output: EnsureFundsOutput) -> None:
    """The run page's account, keyed by the invoice: each application and capture."""
    currency = output.currency_iso_code
    rows = [{"Payment": a.payment_id, "Kind": f"applied ({a.type})", "Amount": money(a.amount, currency)}
            for a in output.applications]
    rows += [{"Payment": c.payment_id, "Kind": "capture", "Authorization": c.payment_authorization_id,
              "Amount": money(c.amount, currency), "Status": c.status, "Gateway Result": c.gateway_result_code}
             for c in output.captures]
    summary = "\n".join([
        f"- Invoice {link('Invoice', output.invoice_id)} of order summary {link('OrderSummary', output.order_summary_id)}",
        f"- Still owed: **{money(output.invoice_balance, currency)}**",
        *(f"- Process exception {link('ProcessException', p)}" for p in output.process_exception_ids),
    ])
    publish(record="invoice-funds", record_id=output.invoice_id, title="Ensure Funds", rows=rows, summary=summary)


def _output(order_summary_id: str, request: EnsureFundsInput, operation_id: str) -> EnsureFundsOutput:
    with session_scope() as session:
        invoice = session.get(Invoice, request.invoice_id)
        applications = list(session.exec(
            select(PaymentLineInvoice).where(PaymentLineInvoice.background_operation_id == operation_id)
            .order_by(col(PaymentLineInvoice.applied_date), col(PaymentLineInvoice.id))))
        captured = [session.get(Payment, a.payment_id) for a in applications]
        exceptions = process_exception_ids_of(session, operation_id, [p.id for p in captured])
        result_codes = {log.reference_entity_id: log.gateway_result_code for log in session.exec(
            select(PaymentGatewayLog).where(col(PaymentGatewayLog.reference_entity_id).in_([p.id for p in captured])))}
    currency = invoice.currency_iso_code
    return EnsureFundsOutput(
        order_summary_id=order_summary_id, invoice_id=invoice.id, currency_iso_code=currency,
        applications=[FundsApplication(payment_id=a.payment_id, amount=quantize(a.amount, currency, strict=False), type=a.type)
                      for a in applications],
        captures=[CaptureResult(payment_id=p.id, payment_authorization_id=p.payment_authorization_id,
                                amount=quantize(p.amount, currency, strict=False), status=p.status,
                                gateway_result_code=result_codes.get(p.id))
                  for p in captured if p.payment_authorization_id],
        invoice_balance=quantize(invoice.balance, currency, strict=False),
        process_exception_ids=exceptions,
    )
