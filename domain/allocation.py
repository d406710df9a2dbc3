"""Seed 000's refund allocation algorithm (Ensure Refunds Async), pure and deterministic.

Each step of the seed is one function below, named for what it does and carrying the
step number in its docstring, so the code can be read against the seed:

* step 0 (``pay_invoices_from_credit_memo``): invoicesToPay are paid from the credit memo
  before anything is refunded;
* step 1 (``check_total_available_to_refund``): credit memo balance + excess funds must
  not exceed the total AvailableToRefund of the order's payment summaries;
* step 2 (``apply_sequences``): the sequences, in order, until everything is refunded;
  then stop if everything is refunded or isAllowPartial is true;
* step 3 (``refund_exact_match_else_largest`` for the credit memo) and step 4 (the same
  for excess funds): exact match, else the largest AvailableToRefund, repeated.

Tie-break (Salesforce picks at random): among order payment summaries with equal
AvailableToRefund, the one that comes first in the order the caller passes them wins.
The store passes them oldest first (CreatedDate, then Id), so the oldest payment method
is refunded first and the same inputs always give the same plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from domain.errors import InsufficientAvailableToRefundError, InvalidInputError, InvariantViolationError
from domain.money import ZERO, quantize


class FundSource(StrEnum):
    """Where a refunded amount comes from."""

    CREDIT_MEMO = "CreditMemo"
    EXCESS_FUNDS = "ExcessFunds"


class AllocationStep(StrEnum):
    """The step of seed 000 that produced an allocation."""

    SEQUENCE = "Sequence"  # step 2
    CREDIT_MEMO = "CreditMemo"  # step 3
    EXCESS_FUNDS = "ExcessFunds"  # step 4


class AllocationStrategy(StrEnum):
    """How steps 3 and 4 pick the next order payment summary."""

    EXACT_MATCH_ELSE_LARGEST = "ExactMatchElseLargest"
    """Seed 000 (the default): exact match, else the largest AvailableToRefund."""

    FEWEST_PAYMENTS = "FewestPayments"
    """Exact match, else the smallest summary that covers the rest, else the largest."""


@dataclass(frozen=True, slots=True)
class SequenceEntry:
    """One row of the caller's ``sequences``: refund ``amount`` to this summary; ``None``:
    as much as the summary can refund, up to what is left to refund."""

    order_payment_summary_id: str
    amount: Decimal | None


@dataclass(frozen=True, slots=True)
class InvoiceToPay:
    """A fee invoice (``invoicesToPay``) and its open balance."""

    invoice_id: str
    balance: Decimal


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """What the caller asked for, with the credit memo's balance read from the store."""

    currency: str
    credit_memo_balance: Decimal | None = None
    excess_funds_amount: Decimal | None = None
    invoices_to_pay: tuple[InvoiceToPay, ...] = ()
    is_allow_partial: bool = False
    sequences: tuple[SequenceEntry, ...] = ()
    strategy: AllocationStrategy = AllocationStrategy.EXACT_MATCH_ELSE_LARGEST


@dataclass(frozen=True, slots=True)
class RefundAllocation:
    """``amount`` refunded to one order payment summary, from one source, by one step."""

    order_payment_summary_id: str
    amount: Decimal
    source: FundSource
    step: AllocationStep


@dataclass(frozen=True, slots=True)
class InvoicePayment:
    """``amount`` of the credit memo applied to an invoice."""

    invoice_id: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class RefundPlan:
    """The outcome of the algorithm: what to apply to invoices and what to refund where."""

    currency: str
    invoice_payments: tuple[InvoicePayment, ...]
    allocations: tuple[RefundAllocation, ...]
    unrefunded_credit_memo_balance: Decimal
    unrefunded_excess_funds: Decimal

    def total_refunded(self, source: FundSource | None = None) -> Decimal:
        return sum(
            (a.amount for a in self.allocations if source is None or a.source == source), ZERO
        )

    def total_applied_to_invoices(self) -> Decimal:
        return sum((p.amount for p in self.invoice_payments), ZERO)

    def refunds_by_summary(self) -> dict[str, Decimal]:
        """Total per order payment summary, in the order summaries were first chosen."""
        totals: dict[str, Decimal] = {}
        for allocation in self.allocations:
            totals[allocation.order_payment_summary_id] = (
                totals.get(allocation.order_payment_summary_id, ZERO) + allocation.amount
            )
        return totals


@dataclass(slots=True)
class _Remaining:
    """Mutable working state: what is still to be refunded from each source."""

    credit_memo: Decimal
    excess_funds: Decimal
    allocations: list[RefundAllocation] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return self.credit_memo + self.excess_funds

    def take(self, amount: Decimal) -> list[tuple[FundSource, Decimal]]:
        """Draw ``amount`` from the credit memo first, then from excess funds."""
        parts = []
        from_memo = min(amount, self.credit_memo)
        if from_memo > 0:
            self.credit_memo -= from_memo
            parts.append((FundSource.CREDIT_MEMO, from_memo))
        from_excess = amount - from_memo
        if from_excess > 0:
            self.excess_funds -= from_excess
            parts.append((FundSource.EXCESS_FUNDS, from_excess))
        return parts


def pay_invoices_from_credit_memo(
    credit_memo_balance: Decimal, invoices: Iterable[InvoiceToPay]
) -> tuple[list[InvoicePayment], Decimal]:
    """Step 0: pay each fee invoice, in the given order, from the credit memo's balance.

    An invoice the balance cannot cover in full is paid in part and keeps the rest open.
    Returns the payments and the credit memo balance left to refund.
    """
    payments: list[InvoicePayment] = []
    remaining = credit_memo_balance
    for invoice in invoices:
        amount = min(invoice.balance, remaining)
        if amount > 0:
            payments.append(InvoicePayment(invoice.invoice_id, amount))
            remaining -= amount
    return payments, remaining


def check_total_available_to_refund(
    credit_memo_balance: Decimal, excess_funds_amount: Decimal, available: Mapping[str, Decimal]
) -> None:
    """Step 1: the credit memo balance and excess funds must not exceed the total
    AvailableToRefund amount of all the order payment summaries of the order summary."""
    total_available = sum(available.values(), ZERO)
    requested = credit_memo_balance + excess_funds_amount
    if requested > total_available:
        raise InsufficientAvailableToRefundError(
            f"the credit memo balance and excess funds ({requested}) exceed the total "
            f"AvailableToRefundAmount of the order payment summaries ({total_available})"
        )


def apply_sequences(
    sequences: Sequence[SequenceEntry], available: dict[str, Decimal], remaining: _Remaining
) -> None:
    """Step 2a: traverse the sequences in order, applying each amount to its summary,
    and stop once the credit memo and excess funds are fully refunded.

    Every entry must name a summary of this order, whether or not it is reached. An
    entry's amount is cut to what is still to be refunded; what is then applied must fit
    the summary's AvailableToRefund, else the request is refused (the caller asked for
    the impossible, and guessing another summary would betray the sequence).
    """
    for entry in sequences:
        if entry.order_payment_summary_id not in available:
            raise InvalidInputError(
                f"sequence names order payment summary {entry.order_payment_summary_id}, "
                "which does not belong to this order summary"
            )
    for entry in sequences:
        if remaining.total == 0:
            return
        can_take = available[entry.order_payment_summary_id]
        amount = min(can_take if entry.amount is None else entry.amount, remaining.total)
        if amount == 0:  # an entry without an amount on a summary with nothing left
            continue
        if amount > can_take:
            raise InsufficientAvailableToRefundError(
                f"sequence amount {amount} exceeds the AvailableToRefundAmount "
                f"({available[entry.order_payment_summary_id]}) of order payment summary "
                f"{entry.order_payment_summary_id}"
            )
        _allocate(entry.order_payment_summary_id, amount, AllocationStep.SEQUENCE, available, remaining)


def choose_exact_match_else_largest(
    amount: Decimal, available: Mapping[str, Decimal], strategy: AllocationStrategy
) -> str:
    """Steps 3a-b and 4a-b: the summary whose AvailableToRefund equals ``amount``, else
    (seed) the one with the largest AvailableToRefund. Ties go to the earliest in order.

    The same rule picks payments inside a summary and, for Ensure Funds, payments and
    authorizations: ``available`` maps any source to what it can give."""
    candidates = [(sid, avail) for sid, avail in available.items() if avail > 0]
    if not candidates:
        raise InsufficientAvailableToRefundError(
            f"no order payment summary has anything left to refund for {amount}"
        )
    for sid, avail in candidates:
        if avail == amount:
            return sid
    if strategy is AllocationStrategy.FEWEST_PAYMENTS:
        covering = [(sid, avail) for sid, avail in candidates if avail > amount]
        if covering:
            return min(covering, key=lambda c: c[1])[0]  # min() keeps the first of equals
    return max(candidates, key=lambda c: c[1])[0]  # max() keeps the first of equals


def refund_exact_match_else_largest(
    amount: Decimal,
    step: AllocationStep,
    available: dict[str, Decimal],
    remaining: _Remaining,
    strategy: AllocationStrategy,
) -> None:
    """Steps 3 (credit memo) and 4 (excess funds): apply to the exact match, else to the
    largest AvailableToRefund; repeat (3c, 4c) until ``amount`` is fully refunded."""
    left = amount
    while left > 0:
        sid = choose_exact_match_else_largest(left, available, strategy)
        portion = min(left, available[sid])
        _allocate(sid, portion, step, available, remaining)
        left -= portion


def _allocate(
    sid: str, amount: Decimal, step: AllocationStep, available: dict[str, Decimal], remaining: _Remaining
) -> None:
    available[sid] -= amount
    for source, part in remaining.take(amount):
        remaining.allocations.append(RefundAllocation(sid, part, source, step))


def plan_refunds(request: RefundRequest, available_to_refund: Mapping[str, Decimal]) -> RefundPlan:
    """Run seed 000's algorithm, steps 0-4, and return the plan; change nothing.

    Args:
        request: the caller's inputs, the credit memo balance read from the store.
        available_to_refund: AvailableToRefundAmount of every order payment summary of
            the order summary, keyed by Id, in tie-break order (oldest first).

    Raises:
        InvalidInputError: the request is malformed or names foreign summaries.
        InsufficientAvailableToRefundError: step 1's pre-check, or a sequence, fails.

    Example:
        >>> plan = plan_refunds(
        ...     RefundRequest(currency="USD", credit_memo_balance=Decimal("30.00")),
        ...     {"0aPA": Decimal("20.00"), "0aPB": Decimal("30.00")},
        ... )
        >>> plan.refunds_by_summary()
        {'0aPB': Decimal('30.00')}
    """
    currency = request.currency
    memo = _checked_amount(request.credit_memo_balance, currency, "credit memo balance", allow_zero=True)
    excess = _checked_amount(request.excess_funds_amount, currency, "excessFundsAmount")
    if request.credit_memo_balance is None and request.excess_funds_amount is None:
        raise InvalidInputError("specify creditMemoId or excessFundsAmount (or both)")
    if request.invoices_to_pay and request.credit_memo_balance is None:
        raise InvalidInputError("invoicesToPay are paid from the credit memo: specify creditMemoId")
    invoices = tuple(
        InvoiceToPay(i.invoice_id, _checked_amount(i.balance, currency, f"balance of invoice {i.invoice_id}", allow_zero=True))
        for i in request.invoices_to_pay
    )
    sequences = tuple(
        SequenceEntry(e.order_payment_summary_id,
                      None if e.amount is None else _checked_amount(e.amount, currency, "sequence amount"))
        for e in request.sequences
    )
    available = {sid: _checked_amount(a, currency, f"AvailableToRefundAmount of {sid}", allow_zero=True)
                 for sid, a in available_to_refund.items()}

    invoice_payments, memo = pay_invoices_from_credit_memo(memo, invoices)
    check_total_available_to_refund(memo, excess, available)

    remaining = _Remaining(credit_memo=memo, excess_funds=excess)
    if sequences:
        apply_sequences(sequences, available, remaining)
        if remaining.total == 0 or request.is_allow_partial:  # step 2b
            return _plan(currency, invoice_payments, remaining)

    refund_exact_match_else_largest(
        remaining.credit_memo, AllocationStep.CREDIT_MEMO, available, remaining, request.strategy
    )
    refund_exact_match_else_largest(
        remaining.excess_funds, AllocationStep.EXCESS_FUNDS, available, remaining, request.strategy
    )
    return _plan(currency, invoice_payments, remaining)


def _plan(currency: str, invoice_payments: list[InvoicePayment], remaining: _Remaining) -> RefundPlan:
    return RefundPlan(
        currency=currency,
        invoice_payments=tuple(invoice_payments),
        allocations=tuple(remaining.allocations),
        unrefunded_credit_memo_balance=remaining.credit_memo,
        unrefunded_excess_funds=remaining.excess_funds,
    )


def _checked_amount(value: Decimal | None, currency: str, what: str, *, allow_zero: bool = False) -> Decimal:
    if value is None:
        return quantize(ZERO, currency)
    if not isinstance(value, Decimal):
        raise InvalidInputError(f"{what} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise InvalidInputError(f"{what} must be a finite amount, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidInputError(f"{what} must be positive, got {value}")
    return quantize(value, currency)


@dataclass(frozen=True, slots=True)
class PaymentRefundable:
    """A captured payment of one order payment summary and what can still be refunded."""

    payment_id: str
    refundable: Decimal


def spread_over_payments(amount: Decimal, payments: Sequence[PaymentRefundable]) -> list[tuple[str, Decimal]]:
    """Split one summary's refund over its payments, by the seed's own rule: the payment
    whose refundable amount matches exactly, else the largest, repeated; ties go to the
    earliest payment. Raises InvariantViolationError if the payments cannot cover it."""
    refundable = {p.payment_id: p.refundable for p in payments}
    if sum(refundable.values(), ZERO) < amount:
        raise InvariantViolationError(
            f"the payments can refund {sum(refundable.values(), ZERO)}, less than the {amount} "
            "their order payment summary says is available"
        )
    parts: list[tuple[str, Decimal]] = []
    left = amount
    while left > 0:
        pid = choose_exact_match_else_largest(left, refundable, AllocationStrategy.EXACT_MATCH_ELSE_LARGEST)
        portion = min(left, refundable[pid])
        refundable[pid] -= portion
        parts.append((pid, portion))
        left -= portion
    return parts
