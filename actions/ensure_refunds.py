"""Ensure Refunds (seed 000): refund a credit memo and/or excess funds to the order's
payment summaries, through their payment gateways.

Money safety (DESIGN.md §8): in one locked transaction the plan is made and every
refund is written PENDING with its idempotency key, its amount reserved in the
summary's and payment's PendingRefundAmount and taken off the credit memo's Balance;
only then is the gateway called, once per refund, with that key. Each answer is
settled in its own transaction. A decline or error releases the reservation (the
credit memo gets its balance back) and leaves a ProcessException; a timeout keeps the
reservation as UNKNOWN until the gateway is asked. Gateway answers never make the
operation fail (seed 000); invalid input does, and then nothing has been written.

Re-running the same operation (a retried flow run) first finishes the refunds it has
already written; it never plans them twice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from prefect import get_run_logger, task
from pydantic import BeforeValidator, Field
from pydantic.json_schema import SkipJsonSchema
from sqlmodel import Session, col, select

from actions.artifacts import link, money, publish
from actions.fields import MAX_ITEMS, ActionModel, MoneyAmount, RecordId, drop_default
from actions.refunds import emit_refund_event, send_and_settle
from db.engine import session_scope
from db.ids import new_id
from db.outbox import CREATED, record_refund_event
from db.record_events import announce_invoice_paid
from db.ledger import (
    credit_memo_of_order, get_or_raise, invoices_of_order, lock_order_summary, order_payment_summaries,
    process_exception_ids_of, reserve_refund,
)
from db.models import (
    CreditMemo, CreditMemoInvApplication, InteractionType, Invoice, OrderPaymentSummary, OrderSummary, Payment,
    PaymentGatewayLog, Refund, RefundStatus, available_to_refund,
)
from domain.allocation import (
    AllocationStrategy, FundSource, InvoiceToPay, PaymentRefundable, RefundPlan, RefundRequest, SequenceEntry,
    plan_refunds, spread_over_payments,
)
from domain.errors import InvalidInputError
from domain.money import ZERO, quantize
from gateways.registry import GatewayAdapters


class RefundSequence(ActionModel):
    """Sequence Order Payment Summary Input (56.0): an amount to refund to one order payment summary."""

    amount: MoneyAmount | SkipJsonSchema[None] = Field(
        default=None, title="Amount",
        description="Amount to refund to this order payment summary (> 0). Omitted (Salesforce makes it optional "
                    "without saying what that means): as much as this summary can refund now, up to what is left.",
        json_schema_extra=drop_default,
    )
    order_payment_summary_id: RecordId = Field(
        title="Order Payment Summary Id", description="Id of an order payment summary of this order summary (0aP...)."
    )


class InvoiceToPayInput(ActionModel):
    """Invoice To Pay Input (56.0): a fee invoice paid from the credit memo before any refund."""

    invoice_id: RecordId = Field(title="Invoice Id", description="The invoice (3tt...).")


def _invoice_objects(value: Any) -> Any:
    # Salesforce sends [{"invoiceId": ...}]; a plain id is accepted too (our extension, kept from before).
    if isinstance(value, list):
        return [{"invoiceId": item} if isinstance(item, str) else item for item in value]
    return value


class EnsureRefundsInput(ActionModel):
    """Ensure Refunds Async Input (seed 000 / 001). Specify creditMemoId, excessFundsAmount, or both."""

    SINCE: ClassVar[dict[str, str]] = {
        "excessFundsAmount": "49.0", "invoicesToPay": "56.0", "isAllowPartial": "56.0", "sequences": "56.0",
        "isReservedBalanceAmountConsidered": "59.0"}
    """The API version each property appeared in (Connect REST's Ensure Refunds Async Input)."""

    credit_memo_id: RecordId | SkipJsonSchema[None] = Field(
        default=None, title="Credit Memo Id", description="Id of the credit memo to ensure refunds for (50g...).",
        json_schema_extra=drop_default,
    )
    excess_funds_amount: MoneyAmount | SkipJsonSchema[None] = Field(
        default=None, title="Excess Funds Amount", description="Amount of excess funds to refund.",
        json_schema_extra=drop_default,
    )
    invoices_to_pay: Annotated[list[InvoiceToPayInput], BeforeValidator(_invoice_objects)] = Field(
        default_factory=list, max_length=MAX_ITEMS, title="Invoices To Pay",
        description="Fee invoices (e.g. return fees) paid from the credit memo before anything is refunded.",
    )
    is_reserved_balance_amount_considered: bool | SkipJsonSchema[None] = Field(
        default=None, title="Reserved Balance Amount Considered",
        description="Salesforce's (59.0). Orders here hold no reserved balance, so true and false refund the same.",
        json_schema_extra=drop_default,
    )
    is_allow_partial: bool = Field(
        default=False, title="Allow Partial",
        description="With sequences: leave what the sequences do not cover unrefunded on the credit memo.",
    )
    sequences: list[RefundSequence] = Field(
        default_factory=list, max_length=MAX_ITEMS, title="Sequences",
        description="Ordered refund amounts per order payment summary, applied before the default logic.",
    )
    strategy: AllocationStrategy = Field(
        default=AllocationStrategy.EXACT_MATCH_ELSE_LARGEST, title="Allocation Strategy",
        description="ExactMatchElseLargest is seed 000's logic; FewestPayments prefers the smallest covering summary.",
    )


class RefundResult(ActionModel):
    """One refund this operation made, as it stands when the operation ends."""

    refund_id: str
    order_payment_summary_id: str
    payment_id: str
    amount: Decimal
    funding_source: str
    allocation_step: str | None = Field(
        default=None, description="The step(s) of seed 000 that chose it: Sequence, CreditMemo, ExcessFunds.")
    status: RefundStatus
    gateway_result_code: str | None = None
    gateway_message: str | None = None


class InvoicePaid(ActionModel):
    invoice_id: str
    amount: Decimal


class EnsureRefundsOutput(ActionModel):
    """What the operation did. (The REST answer is only the backgroundOperationId.)"""

    order_summary_id: str
    credit_memo_id: str | None
    currency_iso_code: str
    refunds: list[RefundResult]
    invoices_paid: list[InvoicePaid]
    refunded_amount: Decimal = Field(description="Sum of Processed refunds.")
    failed_amount: Decimal = Field(description="Sum of declined or failed refunds (their amounts were released).")
    unknown_amount: Decimal = Field(description="Sum of refunds whose gateway outcome is not known yet.")
    unrefunded_credit_memo_balance: Decimal
    unrefunded_excess_funds: Decimal
    process_exception_ids: list[str]


@dataclass
class OrderFunds:
    """What planning and reserving read for one order: the credit memo and invoices asked
    for, its payment summaries and their payments (each oldest first, the tie-break order)."""

    order: OrderSummary
    memo: CreditMemo | None
    invoices: list[Invoice]
    summaries: dict[str, OrderPaymentSummary]
    payments: dict[str, list[Payment]]


def read_funds(session: Session, order: OrderSummary, request: EnsureRefundsInput, *, for_update: bool) -> OrderFunds:
    """Read what the algorithm needs (locked when reserving). Writes nothing."""
    memo = (
        credit_memo_of_order(session, request.credit_memo_id, order, for_update=for_update)
        if request.credit_memo_id else None
    )
    invoices = invoices_of_order(session, [i.invoice_id for i in request.invoices_to_pay], order, for_update=for_update)
    summaries = order_payment_summaries(session, order.id, for_update=for_update)
    return OrderFunds(order=order, memo=memo, invoices=invoices, summaries={ops.id: ops for ops in summaries},
                      payments=payments_by_summary(session, [ops.id for ops in summaries], for_update=for_update))


def payments_by_summary(session: Session, summary_ids: list[str], *, for_update: bool) -> dict[str, list[Payment]]:
    """The payments of these order payment summaries, oldest first, per summary (one query)."""
    statement = (
        select(Payment).where(col(Payment.order_payment_summary_id).in_(summary_ids))
        .order_by(col(Payment.created_date), col(Payment.id))
    )
    if for_update:
        statement = statement.with_for_update()
    payments: dict[str, list[Payment]] = {summary_id: [] for summary_id in summary_ids}
    for payment in session.exec(statement):
        payments[payment.order_payment_summary_id].append(payment)
    return payments


def plan_for(funds: OrderFunds, request: EnsureRefundsInput) -> RefundPlan:
    """Run seed 000's algorithm on what was read. Pure: reads and writes nothing."""
    currency = funds.order.currency_iso_code
    excess = None if request.excess_funds_amount is None else quantize(request.excess_funds_amount, currency)
    if excess is not None and excess <= 0:
        raise InvalidInputError("excessFundsAmount must be greater than zero")
    return plan_refunds(
        RefundRequest(
            currency=currency,
            credit_memo_balance=None if funds.memo is None else funds.memo.balance,
            excess_funds_amount=excess,
            invoices_to_pay=tuple(InvoiceToPay(i.id, i.balance) for i in funds.invoices),
            is_allow_partial=request.is_allow_partial,
            sequences=tuple(SequenceEntry(s.order_payment_summary_id, None if s.amount is None else quantize(s.amount, currency))
                            for s in request.sequences),
            strategy=request.strategy,
        ),
        refundable_now(funds),
    )


def refundable_now(funds: OrderFunds) -> dict[str, Decimal]:
    """AvailableToRefund per summary, capped by what its processed payments can refund now:
    a capture still pending counts in AvailableToRefund (DESIGN §3) but cannot be refunded
    until it is processed."""
    return {
        ops.id: min(available_to_refund(ops), sum((p.refundable_amount for p in funds.payments[ops.id]), ZERO))
        for ops in funds.summaries.values()
    }


def check_ensure_refunds(*, session: Session, order_summary_id: str, request: EnsureRefundsInput) -> RefundPlan:
    """Validate a request against the store without changing it (the facade's pre-check)."""
    order = get_or_raise(session, OrderSummary, order_summary_id)
    return plan_for(read_funds(session, order, request, for_update=False), request)


def reserve_refunds(*, session: Session, order_summary_id: str, request: EnsureRefundsInput, operation_id: str) -> list[Refund]:
    """Plan and write the refunds PENDING, reserving their amounts (one transaction)."""
    order = lock_order_summary(session, order_summary_id)
    funds = read_funds(session, order, request, for_update=True)
    refunds = write_reservation(session, funds, plan_for(funds, request), operation_id)
    session.flush()
    return refunds


def write_reservation(session: Session, funds: OrderFunds, plan: RefundPlan, operation_id: str) -> list[Refund]:
    """Write a plan: credit memo applications to invoices, then each refund PENDING with its
    idempotency key, its PaymentGatewayLog row (Initiated) and its RefundCreated event, its
    amount reserved on the summary and payment and taken off the credit memo. The order is
    locked and ``funds`` were read under the lock, in this transaction; nothing is flushed."""
    order, memo = funds.order, funds.memo
    invoices_by_id = {i.id: i for i in funds.invoices}
    for payment in plan.invoice_payments:
        invoice = invoices_by_id[payment.invoice_id]
        invoice.balance -= payment.amount
        memo.balance -= payment.amount
        session.add(CreditMemoInvApplication(
            id=new_id("CreditMemoInvApplication"), credit_memo_id=memo.id, invoice_id=invoice.id,
            amount=payment.amount, currency_iso_code=order.currency_iso_code, background_operation_id=operation_id,
        ))
        announce_invoice_paid(session, invoice)

    per_summary_and_source: dict[tuple[str, FundSource], Decimal] = defaultdict(lambda: ZERO)
    steps: dict[tuple[str, FundSource], list[str]] = defaultdict(list)
    for allocation in plan.allocations:
        key = (allocation.order_payment_summary_id, allocation.source)
        per_summary_and_source[key] += allocation.amount
        if allocation.step.value not in steps[key]:
            steps[key].append(allocation.step.value)

    refunds: list[Refund] = []
    for (summary_id, source), amount in per_summary_and_source.items():
        ops = funds.summaries[summary_id]
        payments = {p.id: p for p in funds.payments[summary_id]}
        parts = spread_over_payments(amount, [PaymentRefundable(p.id, p.refundable_amount) for p in payments.values()])
        for payment_id, part in parts:
            payment = payments[payment_id]
            refund_id = new_id("Refund")
            refund = Refund(
                id=refund_id, order_payment_summary_id=summary_id, payment_id=payment_id,
                credit_memo_id=memo.id if memo else None, amount=part, currency_iso_code=order.currency_iso_code,
                funding_source=source.value, idempotency_key=f"om-refund-{refund_id}",
                allocation_step="+".join(steps[(summary_id, source)]), background_operation_id=operation_id,
                processing_mode=payment.processing_mode, payment_gateway_id=payment.payment_gateway_id,
            )
            reserve_refund(session, ops, payment, part)
            if source is FundSource.CREDIT_MEMO:
                memo.balance -= part
            session.add(refund)
            session.add(PaymentGatewayLog(
                id=new_id("PaymentGatewayLog"), payment_gateway_id=payment.payment_gateway_id, reference_entity_id=refund_id,
                interaction_type=InteractionType.REFUND, sf_ref_number=refund.idempotency_key,
                background_operation_id=operation_id,
            ))
            record_refund_event(session, refund, CREATED)
            refunds.append(refund)
    if memo is not None:
        session.add(memo)
    session.add_all(funds.invoices)
    return refunds


@task(name="ensure-refunds", retries=0, persist_result=False)
def ensure_refunds(order_summary_id: str, request: EnsureRefundsInput, operation_id: str) -> EnsureRefundsOutput:
    """Ensure refunds for a credit memo and/or excess funds (seed 000), through the gateways.

    Args:
        order_summary_id: the order summary whose payment summaries are refunded.
        request: the Ensure Refunds Async input.
        operation_id: the background operation (flow run) id; refunds are tagged with it,
            and a re-run of the same operation finishes its refunds instead of planning anew.

    Returns:
        What was refunded, failed or left unknown, per refund.

    Raises:
        InvalidInputError: the request is invalid; nothing was written.

    Example:
        ```python
        from prefect import flow
        from actions.ensure_refunds import EnsureRefundsInput, ensure_refunds

        @flow
        def refund_credit_memo(order_summary_id: str, credit_memo_id: str):
            return ensure_refunds(
                order_summary_id, EnsureRefundsInput(credit_memo_id=credit_memo_id), "manual-run-1"
            )
        ```
    """
    logger = get_run_logger()
    with session_scope() as session:
        # Under the order's lock, so two executions of one operation (a retry racing a run
        # thought dead) cannot both find nothing planned and plan twice.
        lock_order_summary(session, order_summary_id)
        refunds = list(session.exec(
            select(Refund).where(Refund.background_operation_id == operation_id).order_by(col(Refund.created_date), col(Refund.id))
        ))
        resuming = bool(refunds)
        if resuming:
            logger.info("operation %s already planned %d refunds; finishing them", operation_id, len(refunds))
        else:
            refunds = reserve_refunds(session=session, order_summary_id=order_summary_id, request=request, operation_id=operation_id)
            logger.info("reserved %d refunds for order summary %s", len(refunds), order_summary_id)
    for refund in refunds:
        emit_refund_event(refund, "pending", order_summary_id=order_summary_id)

    adapters = GatewayAdapters()
    for refund in refunds:
        if refund.status != RefundStatus.PENDING:
            continue
        result, _exception_id = send_and_settle(refund, order_summary_id, adapters, resuming=resuming)
        logger.info("refund %s of %s %s: %s %s", refund.id, refund.amount, refund.currency_iso_code,
                    result.outcome.value, result.result_code or "")

    output = _output(order_summary_id, request, operation_id, [r.id for r in refunds])
    publish_refunds(output)
    return output


def publish_refunds(output: EnsureRefundsOutput) -> None:
    """The run page's account: each refund with the allocation step that chose it and the
    gateway's answer, keyed by the credit memo (else the order summary)."""
    currency = output.currency_iso_code
    rows = [{"Refund": r.refund_id, "Order Payment Summary": r.order_payment_summary_id, "Payment": r.payment_id,
             "Amount": money(r.amount, currency), "Funding Source": r.funding_source,
             "Allocation Step (seed 000)": r.allocation_step, "Status": r.status,
             "Gateway Result": r.gateway_result_code, "Gateway Message": r.gateway_message} for r in output.refunds]
    rows += [{"Invoice Paid": i.invoice_id, "Amount": money(i.amount, currency)} for i in output.invoices_paid]
    summary = "\n".join([
        f"- Order summary {link('OrderSummary', output.order_summary_id)}"
        + (f", credit memo {link('CreditMemo', output.credit_memo_id)}" if output.credit_memo_id else ""),
        f"- Refunded **{money(output.refunded_amount, currency)}**, failed {money(output.failed_amount, currency)}, "
        f"outcome unknown {money(output.unknown_amount, currency)}",
        f"- Left unrefunded: credit memo {money(output.unrefunded_credit_memo_balance, currency)}, "
        f"excess funds {money(output.unrefunded_excess_funds, currency)}",
        *(f"- Refund {link('Refund', r.refund_id)}: {money(r.amount, currency)} {r.status}" for r in output.refunds),
        *(f"- Process exception {link('ProcessException', p)}" for p in output.process_exception_ids),
    ])
    if output.credit_memo_id:
        publish(record="credit-memo-refunds", record_id=output.credit_memo_id, title="Ensure Refunds", rows=rows,
                summary=summary)
    else:
        publish(record="order-summary-refunds", record_id=output.order_summary_id, title="Ensure Refunds", rows=rows,
                summary=summary)


def _output(order_summary_id: str, request: EnsureRefundsInput, operation_id: str, refund_ids: list[str]) -> EnsureRefundsOutput:
    with session_scope() as session:
        order = session.get(OrderSummary, order_summary_id)
        refunds = [session.get(Refund, rid) for rid in refund_ids]
        exceptions = process_exception_ids_of(session, operation_id, refund_ids)
        memo = session.get(CreditMemo, request.credit_memo_id) if request.credit_memo_id else None
        memo_balance = memo.balance if memo else ZERO
        applications = list(session.exec(
            select(CreditMemoInvApplication).where(CreditMemoInvApplication.background_operation_id == operation_id)
        ))
    for refund in refunds:
        emit_refund_event(refund, refund.status.lower(), order_summary_id=order_summary_id)
    currency = order.currency_iso_code

    def total(*statuses: RefundStatus) -> Decimal:
        return quantize(sum((r.amount for r in refunds if r.status in statuses), ZERO), currency, strict=False)

    excess_asked = request.excess_funds_amount or ZERO
    excess_refunded = sum((r.amount for r in refunds if r.funding_source == FundSource.EXCESS_FUNDS and r.status not in (RefundStatus.FAILED, RefundStatus.REVERSED)), ZERO)
    return EnsureRefundsOutput(
        order_summary_id=order_summary_id,
        credit_memo_id=request.credit_memo_id,
        currency_iso_code=currency,
        refunds=[
            RefundResult(
                refund_id=r.id, order_payment_summary_id=r.order_payment_summary_id, payment_id=r.payment_id,
                amount=r.amount, funding_source=r.funding_source, allocation_step=r.allocation_step, status=r.status,
                gateway_result_code=r.gateway_result_code, gateway_message=r.gateway_message,
            ) for r in refunds
        ],
        invoices_paid=[InvoicePaid(invoice_id=a.invoice_id, amount=a.amount) for a in applications],
        refunded_amount=total(RefundStatus.PROCESSED),
        failed_amount=total(RefundStatus.FAILED),
        unknown_amount=total(RefundStatus.UNKNOWN, RefundStatus.PENDING),
        unrefunded_credit_memo_balance=quantize(memo_balance, currency, strict=False),
        unrefunded_excess_funds=quantize(max(ZERO, excess_asked - excess_refunded), currency, strict=False),
        process_exception_ids=exceptions,
    )
