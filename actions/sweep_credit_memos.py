"""Sweep Credit Memos (DESIGN.md §7): refund every credit memo balance left unrefunded,
on a schedule, through the same steps as Ensure Refunds, a batch of memos at a time.

Each memo is refunded exactly as ``EnsureRefundsInput(credit_memo_id=...)`` would refund
it alone (seed 000's allocation, ``plan_for``/``write_reservation``, ``send_refund``,
``record_gateway_result``); a batch only shares the round trips:

1. one transaction locks the batch's order summaries (in Id order), reads their memos,
   payment summaries, payments and blocking refunds in a handful of queries, plans each
   memo and writes its refunds PENDING with their idempotency keys, gateway log rows and
   events, the amounts reserved;
2. the gateway is called once per refund, with its key, outside any transaction, a few
   calls at a time (``gatewayConcurrency``; one payment's refunds one after another);
3. one transaction records every answer under the same locks: Processed; declined or
   failed releases the amount back to the memo and files a ProcessException; a timeout
   stays Unknown, reserved, until resolve-gateway-outcomes asks the gateway.

A crash between 1 and 3 leaves PENDING refunds with their keys, which
resolve-gateway-outcomes sends or settles once the run is over, as for Ensure Refunds.

A memo is skipped, with the reason in the output, when a refund of it is Pending or
Unknown (``REFUND_IN_PROGRESS``: settle that first); when a refund of it failed or was
reversed (``PREVIOUS_REFUND_FAILED``: its ProcessException waits for a person, unless
``retryFailed``); when its order cannot refund the whole balance now (the refusal's error
code, e.g. ``INSUFFICIENT_AVAILABLE_TO_REFUND`` when less was captured than the memo
holds or a capture is still pending: nothing is refunded in part); or when its balance
was refunded between finding and locking it (``NO_BALANCE``).
"""

from __future__ import annotations

import contextvars
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Annotated

from prefect import get_run_logger, task
from pydantic import Field, model_serializer
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import Numeric, cast
from sqlmodel import Session, col, select

from actions.artifacts import Progress
from actions.ensure_refunds import EnsureRefundsInput, OrderFunds, payments_by_summary, plan_for, write_reservation
from actions.fields import ActionModel, CurrencyCode, RecordId, drop_default
from actions.refunds import emit_refund_event, record_gateway_result, send_refund
from db.engine import session_scope
from db.ledger import check_credit_memo_of_order, lock_order_summaries, moves_money_outside
from db.models import (
    CreditMemo, Invoice, OrderPaymentSummary, Payment, PaymentGateway, PaymentGatewayLog, Refund, RefundStatus,
)
from db.types import utcnow
from domain.errors import InvalidInputError, NotFoundError
from domain.money import ZERO, normalize_currency, quantize
from gateways.contract import GatewayResult
from gateways.registry import GatewayAdapters

IN_PROGRESS = (RefundStatus.PENDING, RefundStatus.UNKNOWN)
FAILED = (RefundStatus.FAILED, RefundStatus.REVERSED)


class SweepCreditMemosInput(ActionModel):
    """Which credit memos the sweep refunds: by default every one with a balance that is
    at least an hour old, 200 to a transaction."""

    older_than_seconds: int = Field(
        default=3600, ge=0, title="Older Than (seconds)",
        description="Only credit memos created at least this many seconds ago, so a flow that has just made one "
                    "refunds it itself.",
    )
    max_credit_memos: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = Field(
        default=None, title="Max Credit Memos",
        description="Refund at most this many credit memos, oldest first; blank for all.",
        json_schema_extra=drop_default,
    )
    credit_memo_ids: list[RecordId] = Field(
        default_factory=list, title="Credit Memo Ids",
        description="Only these credit memos (50g...); empty for every credit memo with a balance.",
    )
    currency_iso_code: CurrencyCode | SkipJsonSchema[None] = Field(
        default=None, title="Currency", description="Only credit memos in this currency (ISO 4217, e.g. USD); blank for all.",
        json_schema_extra=drop_default,
    )
    retry_failed: bool = Field(
        default=False, title="Retry Failed",
        description="Also refund credit memos whose earlier refund was declined, failed or reversed "
                    "(each left a ProcessException).",
    )
    gateway_concurrency: int = Field(
        default=4, ge=1, le=32, title="Gateway Concurrency",
        description="Gateway calls in flight at once; refunds of one payment are always sent one after another.",
    )
    batch_size: int = Field(
        default=200, ge=1, le=1000, title="Batch Size",
        description="Credit memos per transaction; their order summaries stay locked while the batch is reserved "
                    "and while it is settled.",
    )

    @model_serializer(mode="wrap")
    def _leave_blanks_out(self, handler):
        # The flow's default input is in the UI form: a blank (None) field must be absent, not null.
        return {name: value for name, value in handler(self).items() if value is not None}


class SkippedCreditMemo(ActionModel):
    """A credit memo the sweep left alone, and why."""

    credit_memo_id: str
    order_summary_id: str
    reason: str = Field(description="REFUND_IN_PROGRESS, PREVIOUS_REFUND_FAILED, NO_BALANCE, or the refusal's "
                                    "error code (e.g. INSUFFICIENT_AVAILABLE_TO_REFUND).")
    message: str


class CurrencyTotals(ActionModel):
    """What the sweep refunded in one currency (amounts quantized to its minor unit)."""

    credit_memos: int = Field(description="Credit memos refunds were written for.")
    refunds: int
    refunded_amount: Decimal = Field(description="Sum of Processed refunds.")
    failed_amount: Decimal = Field(description="Sum of declined or failed refunds (released back to their credit memos).")
    unknown_amount: Decimal = Field(description="Sum of refunds whose gateway outcome is not known yet.")


class SweepCreditMemosOutput(ActionModel):
    """What the sweep did."""

    examined: int = Field(description="Credit memos found with a balance.")
    swept: int = Field(description="Credit memos refunds were written for.")
    refunds_by_status: dict[str, int]
    totals: dict[str, CurrencyTotals] = Field(description="Per currency (ISO 4217 code).")
    skipped: list[SkippedCreditMemo]
    process_exceptions: int = Field(description="ProcessExceptions filed for declined, failed or unknown refunds.")


def find_credit_memos(session: Session, request: SweepCreditMemosInput) -> list[tuple[str, str]]:
    """(credit memo id, order summary id) of the memos to sweep, oldest first. Raises
    InvalidInputError (NotFoundError for an unknown id) on bad input; reads only.

    Unless named in ``creditMemoIds``, a memo whose order still has an unpaid invoice is
    left alone: that balance may be meant to pay it first (a return fee, say, after a
    return-to-refund that stopped), which is Ensure Refunds' ``invoicesToPay``.
    """
    statement = select(CreditMemo.id, CreditMemo.order_summary_id).where(
        cast(CreditMemo.balance, Numeric(19, 4)) > 0,  # SQLite keeps the amount as text
        CreditMemo.created_date <= utcnow() - timedelta(seconds=request.older_than_seconds),
    )
    if not request.credit_memo_ids:
        unpaid_invoice = select(Invoice.id).where(
            Invoice.order_summary_id == CreditMemo.order_summary_id, cast(Invoice.balance, Numeric(19, 4)) > 0)
        statement = statement.where(~unpaid_invoice.exists())
    if request.currency_iso_code is not None:
        statement = statement.where(CreditMemo.currency_iso_code == normalize_currency(request.currency_iso_code))
    if request.credit_memo_ids:
        ids = request.credit_memo_ids
        if len(set(ids)) != len(ids):
            raise InvalidInputError("creditMemoIds names the same credit memo twice")
        known = set(session.exec(select(CreditMemo.id).where(col(CreditMemo.id).in_(ids))))
        if missing := [i for i in ids if i not in known]:
            raise NotFoundError(f"CreditMemo {', '.join(missing)} does not exist")
        statement = statement.where(col(CreditMemo.id).in_(ids))
    statement = statement.order_by(col(CreditMemo.created_date), col(CreditMemo.id)).limit(request.max_credit_memos)
    return [(memo_id, order_id) for memo_id, order_id in session.exec(statement)]


@dataclass
class _Reserved:
    """One batch's reservation, as committed: what the gateway calls and settling need."""

    refunds: list[Refund] = field(default_factory=list)
    order_of: dict[str, str] = field(default_factory=dict)  # refund id -> order summary id
    payments: dict[str, Payment] = field(default_factory=dict)
    gateways: dict[str, PaymentGateway] = field(default_factory=dict)
    skipped: list[SkippedCreditMemo] = field(default_factory=list)
    swept: list[CreditMemo] = field(default_factory=list)


def reserve_batch(session: Session, batch: list[tuple[str, str]], operation_id: str, *, retry_failed: bool) -> _Reserved:
    """Step 1 for a batch (one transaction): lock, read in bulk, plan and write each memo."""
    orders = lock_order_summaries(session, (order_id for _, order_id in batch))
    memo_ids = [memo_id for memo_id, _ in batch]
    memos = {m.id: m for m in session.exec(select(CreditMemo).where(col(CreditMemo.id).in_(memo_ids)).with_for_update())}
    summaries: dict[str, dict[str, OrderPaymentSummary]] = defaultdict(dict)
    for ops in session.exec(
        select(OrderPaymentSummary).where(col(OrderPaymentSummary.order_summary_id).in_(list(orders)))
        .order_by(col(OrderPaymentSummary.created_date), col(OrderPaymentSummary.id)).with_for_update()
    ):
        summaries[ops.order_summary_id][ops.id] = ops
    payments = payments_by_summary(session, [sid for by_id in summaries.values() for sid in by_id], for_update=True)
    blocking: dict[str, set[str]] = defaultdict(set)
    for memo_id, status in session.exec(select(Refund.credit_memo_id, Refund.status).where(
            col(Refund.credit_memo_id).in_(memo_ids), col(Refund.status).in_(IN_PROGRESS + FAILED))):
        blocking[memo_id].add(status)

    reserved = _Reserved()
    for memo_id, order_id in batch:
        memo, order = memos[memo_id], orders[order_id]
        reason = _reason_to_skip(memo, blocking[memo_id], retry_failed=retry_failed)
        if reason is None:
            funds = OrderFunds(order=order, memo=memo, invoices=[], summaries=summaries[order_id],
                               payments={sid: payments[sid] for sid in summaries[order_id]})
            try:
                check_credit_memo_of_order(memo, order)
                plan = plan_for(funds, EnsureRefundsInput(credit_memo_id=memo_id))
            except InvalidInputError as exc:
                reason = (exc.error_code, exc.message)
        if reason is not None:
            reserved.skipped.append(SkippedCreditMemo(credit_memo_id=memo_id, order_summary_id=order_id,
                                                      reason=reason[0], message=reason[1]))
            continue
        refunds = write_reservation(session, funds, plan, operation_id)
        reserved.swept.append(memo)
        reserved.refunds += refunds
        reserved.order_of.update((r.id, order_id) for r in refunds)
    reserved.payments = {p.id: p for by_summary in payments.values() for p in by_summary}
    gateway_ids = {payment.payment_gateway_id for r in reserved.refunds
                   if not moves_money_outside(payment := reserved.payments[r.payment_id])}
    reserved.gateways = {g.id: g for g in session.exec(select(PaymentGateway).where(col(PaymentGateway.id).in_(gateway_ids)))}
    return reserved


def _reason_to_skip(memo: CreditMemo, blocking: set[str], *, retry_failed: bool) -> tuple[str, str] | None:
    if blocking & set(IN_PROGRESS):
        return "REFUND_IN_PROGRESS", "a refund of this credit memo is Pending or Unknown; it is settled first"
    if blocking and not retry_failed:
        return "PREVIOUS_REFUND_FAILED", "a refund of this credit memo failed or was reversed (see its ProcessException)"
    if memo.balance <= 0:
        return "NO_BALANCE", "the balance was refunded since the sweep found it"
    return None


def settle_batch(session: Session, reserved: _Reserved, results: list[GatewayResult]) -> tuple[list[Refund], int]:
    """Step 3 for a batch (one transaction): every gateway answer recorded under the orders'
    locks. Returns the refunds as settled and how many ProcessExceptions were filed."""
    lock_order_summaries(session, reserved.order_of.values())
    refund_ids = [r.id for r in reserved.refunds]
    locked = {r.id: r for r in session.exec(select(Refund).where(col(Refund.id).in_(refund_ids)).with_for_update())}
    logs = {log.sf_ref_number: log for log in session.exec(select(PaymentGatewayLog).where(
        col(PaymentGatewayLog.sf_ref_number).in_([r.idempotency_key for r in reserved.refunds])))}
    # Settling reads these through session.get: load them, locked, in one query each, and
    # hold on to them (the session's identity map keeps only what is referenced).
    _held = [
        session.exec(select(model).where(col(model.id).in_({getattr(r, attribute) for r in locked.values()}))
                     .with_for_update()).all()
        for model, attribute in ((OrderPaymentSummary, "order_payment_summary_id"), (Payment, "payment_id"),
                                 (CreditMemo, "credit_memo_id"))
    ]
    exceptions = 0
    for refund, result in zip(reserved.refunds, results, strict=True):
        if record_gateway_result(session, locked[refund.id], result, reserved.order_of[refund.id],
                                 log=logs[refund.idempotency_key]):
            exceptions += 1
    return [locked[refund_id] for refund_id in refund_ids], exceptions


@dataclass
class _Tally:
    memos: Counter = field(default_factory=Counter)  # currency -> credit memos swept
    refunds: list[tuple[str, str, Decimal]] = field(default_factory=list)  # (currency, status, amount)
    skipped: list[SkippedCreditMemo] = field(default_factory=list)
    exceptions: int = 0

    def output(self, examined: int) -> SweepCreditMemosOutput:
        amounts: dict[str, Counter] = defaultdict(Counter)  # currency -> status -> amount
        refunds = Counter()
        for currency, status, amount in self.refunds:
            amounts[currency][RefundStatus(status)] += amount
            refunds[currency] += 1

        def total(currency: str, *statuses: RefundStatus) -> Decimal:
            return quantize(sum((amounts[currency][s] for s in statuses), ZERO), currency, strict=False)

        return SweepCreditMemosOutput(
            examined=examined, swept=sum(self.memos.values()),
            refunds_by_status=dict(sorted(Counter(RefundStatus(s).value for _, s, _ in self.refunds).items())),
            totals={currency: CurrencyTotals(
                credit_memos=self.memos[currency], refunds=refunds[currency],
                refunded_amount=total(currency, RefundStatus.PROCESSED), failed_amount=total(currency, *FAILED),
                unknown_amount=total(currency, *IN_PROGRESS),
            ) for currency in sorted(self.memos)},
            skipped=self.skipped, process_exceptions=self.exceptions,
        )


def send_batch(reserved: _Reserved, adapters: GatewayAdapters, concurrency: int) -> list[GatewayResult]:
    """Step 2: each refund sent once with its key, up to ``concurrency`` calls at a time; the
    refunds of one payment one after another (gateways may take one per payment at a time)."""
    by_payment: dict[str, list[int]] = defaultdict(list)
    for index, refund in enumerate(reserved.refunds):
        by_payment[refund.payment_id].append(index)
    results: list[GatewayResult | None] = [None] * len(reserved.refunds)

    def send(indexes: list[int]) -> None:
        for index in indexes:
            refund = reserved.refunds[index]
            payment = reserved.payments[refund.payment_id]
            # An External payment has no gateway to call (None: the External adapter).
            gateway = None if moves_money_outside(payment) else reserved.gateways[payment.payment_gateway_id]
            results[index] = send_refund(refund, payment, gateway, adapters, resuming=False)

    with ThreadPoolExecutor(concurrency) as pool:  # each call in a copy of this task run's context (its logger)
        for future in [pool.submit(contextvars.copy_context().run, send, indexes) for indexes in by_payment.values()]:
            future.result()
    return results


def sweep_batch(batch: list[tuple[str, str]], operation_id: str, adapters: GatewayAdapters, tally: _Tally, *,
                retry_failed: bool, concurrency: int) -> None:
    """Steps 1-3 for one batch, each refund's Prefect events emitted after its commit."""
    with session_scope() as session:
        reserved = reserve_batch(session, batch, operation_id, retry_failed=retry_failed)
    for refund in reserved.refunds:
        emit_refund_event(refund, "pending", order_summary_id=reserved.order_of.get(refund.id))
    results = send_batch(reserved, adapters, concurrency)
    settled, exceptions = [], 0
    if reserved.refunds:
        with session_scope() as session:
            settled, exceptions = settle_batch(session, reserved, results)
    logger = get_run_logger()
    for refund in settled:
        emit_refund_event(refund, refund.status.lower(), order_summary_id=reserved.order_of.get(refund.id))
        if refund.status != RefundStatus.PROCESSED:
            logger.warning("refund %s of %s %s (credit memo %s): %s %s", refund.id, refund.amount,
                           refund.currency_iso_code, refund.credit_memo_id, refund.status, refund.gateway_result_code or "")
    tally.memos.update(memo.currency_iso_code for memo in reserved.swept)
    tally.refunds += [(r.currency_iso_code, r.status, r.amount) for r in settled]
    tally.skipped += reserved.skipped
    tally.exceptions += exceptions
    logger.info("batch of %d credit memos: %d refunded through %d refunds, %d skipped", len(batch),
                len(reserved.swept), len(settled), len(reserved.skipped))


@task(name="sweep-credit-memo-balances", retries=0, persist_result=False)
def sweep_credit_memo_balances(request: SweepCreditMemosInput, operation_id: str) -> SweepCreditMemosOutput:
    """Refund the unrefunded balance of every credit memo the request selects, in batches.

    Args:
        request: which credit memos (age, how many, which ones, currency) and the batch size.
        operation_id: the flow run id; refunds and ProcessExceptions are tagged with it.

    Returns:
        Counts and totals per currency, and each skipped credit memo with the reason.

    Raises:
        InvalidInputError: the request is invalid (NotFoundError: an unknown credit memo id);
            nothing was written.

    Example:
        ```python
        from prefect import flow
        from actions.sweep_credit_memos import SweepCreditMemosInput, sweep_credit_memo_balances

        @flow
        def nightly_sweep():
            return sweep_credit_memo_balances(SweepCreditMemosInput(older_than_seconds=86400), "nightly-sweep")
        ```
    """
    with session_scope() as session:
        found = find_credit_memos(session, request)
    get_run_logger().info("%d credit memos with a balance to sweep", len(found))
    adapters, tally = GatewayAdapters(), _Tally()
    progress = Progress(f"Sweeping {len(found)} credit memo balance(s)")
    for start in range(0, len(found), request.batch_size):
        sweep_batch(found[start:start + request.batch_size], operation_id, adapters, tally,
                    retry_failed=request.retry_failed, concurrency=request.gateway_concurrency)
        progress.update(min(len(found), start + request.batch_size), len(found))
    progress.update(len(found), len(found))
    return tally.output(examined=len(found))
