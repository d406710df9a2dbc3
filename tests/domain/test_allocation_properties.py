"""Properties of seed 000's refund allocation (domain/allocation.py), checked with hypothesis.

Amounts are generated as whole cents divided by 100 (so Decimal('10') and Decimal('10.5')
occur as well as Decimal('10.25')); available amounts are drawn partly from a small pool
so that equal AvailableToRefund values, and hence ties, are common.
"""

import contextlib
from dataclasses import dataclass
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.allocation import (
    AllocationStep,
    AllocationStrategy,
    FundSource,
    InvoiceToPay,
    RefundPlan,
    RefundRequest,
    SequenceEntry,
    plan_refunds,
)
from domain.errors import InsufficientAvailableToRefundError

CENT = Decimal("0.01")
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def cents(n: int) -> Decimal:
    return Decimal(n) / 100


@dataclass(frozen=True)
class Case:
    request: RefundRequest
    available: dict[str, Decimal]

    @property
    def memo(self) -> Decimal:
        return self.request.credit_memo_balance or Decimal(0)

    @property
    def excess(self) -> Decimal:
        return self.request.excess_funds_amount or Decimal(0)

    def memo_after_invoices(self) -> Decimal:
        """Step 0, computed independently: invoices paid in order from the memo."""
        left = self.memo
        for invoice in self.request.invoices_to_pay:
            left -= min(left, invoice.balance)
        return left

    def requested(self) -> Decimal:
        return self.memo_after_invoices() + self.excess

    def total_available(self) -> Decimal:
        return sum(self.available.values(), Decimal(0))

    def passes_step_1(self) -> bool:
        return self.requested() <= self.total_available()

    def sequences_are_feasible(self) -> bool:
        """Step 2's own checks, computed independently: each entry reached (before
        everything is refunded), cut to what is still to refund, must fit what is left
        of its summary."""
        left = dict(self.available)
        to_refund = self.requested()
        for entry in self.request.sequences:
            if to_refund == 0:
                break
            amount = min(entry.amount, to_refund)
            if amount > left[entry.order_payment_summary_id]:
                return False
            left[entry.order_payment_summary_id] -= amount
            to_refund -= amount
        return True

    def stops_at_step_2(self) -> bool:
        return bool(self.request.sequences) and self.request.is_allow_partial


POOL = [0, 100, 500, 1000, 1050, 2500]  # cents; repeats make ties


@st.composite
def refund_cases(draw, *, with_sequences: bool = True) -> Case:
    n = draw(st.integers(1, 6))
    amounts = draw(
        st.lists(st.one_of(st.sampled_from(POOL), st.integers(0, 10_000)), min_size=n, max_size=n)
    )
    ids = [f"0a{i}" for i in range(n)]
    available = {sid: cents(a) for sid, a in zip(ids, amounts, strict=True)}
    total = sum(amounts)

    has_memo, has_excess = draw(
        st.sampled_from([(True, False), (False, True), (True, True)])
    )
    # Mostly within the total available, sometimes above it.
    ceiling = max(total, 1) + draw(st.sampled_from([0, 0, 500]))
    memo = cents(draw(st.integers(0, ceiling))) if has_memo else None
    excess = cents(draw(st.integers(1, ceiling))) if has_excess else None

    invoices: tuple[InvoiceToPay, ...] = ()
    if has_memo:
        invoices = tuple(
            InvoiceToPay(f"inv{i}", cents(b))
            for i, b in enumerate(draw(st.lists(st.integers(0, 3_000), max_size=3)))
        )

    sequences: tuple[SequenceEntry, ...] = ()
    if with_sequences and draw(st.booleans()):
        entries = draw(
            st.lists(st.tuples(st.sampled_from(ids), st.integers(1, 10_000)), min_size=1, max_size=4)
        )
        # Mostly within the summary's available amount, so that most cases get through.
        sequences = tuple(
            SequenceEntry(sid, cents(min(a, max(1, int(available[sid] * 100)))) if a % 4 else cents(a))
            for sid, a in entries
        )

    request = RefundRequest(
        currency="USD",
        credit_memo_balance=memo,
        excess_funds_amount=excess,
        invoices_to_pay=invoices,
        is_allow_partial=draw(st.booleans()),
        sequences=sequences,
        strategy=draw(st.sampled_from(list(AllocationStrategy))),
    )
    return Case(request, available)


def plan_or_none(case: Case) -> RefundPlan | None:
    """The plan, or None where a sequence legitimately asks a summary for too much."""
    if not case.passes_step_1():
        return None
    if not case.sequences_are_feasible():
        try:
            plan_refunds(case.request, case.available)
        except InsufficientAvailableToRefundError:
            return None
        raise AssertionError("an infeasible sequence was accepted")
    return plan_refunds(case.request, case.available)


@SETTINGS
@given(refund_cases())
def test_everything_is_refunded_unless_partial_is_allowed(case):
    plan = plan_or_none(case)
    if plan is None or case.stops_at_step_2():
        return
    assert plan.total_refunded() == case.memo_after_invoices() + case.excess
    assert plan.unrefunded_credit_memo_balance == 0
    assert plan.unrefunded_excess_funds == 0


@SETTINGS
@given(refund_cases())
def test_no_summary_receives_more_than_it_has_available(case):
    plan = plan_or_none(case)
    if plan is None:
        return
    for sid, refunded in plan.refunds_by_summary().items():
        assert sid in case.available
        assert refunded <= case.available[sid]


@SETTINGS
@given(refund_cases())
def test_allocations_are_positive_whole_cents(case):
    plan = plan_or_none(case)
    if plan is None:
        return
    for allocation in plan.allocations:
        assert allocation.amount > 0
        assert allocation.amount == allocation.amount.quantize(CENT)
    for payment in plan.invoice_payments:
        assert payment.amount > 0
        assert payment.amount == payment.amount.quantize(CENT)


@SETTINGS
@given(refund_cases())
def test_the_credit_memo_and_excess_funds_are_conserved(case):
    plan = plan_or_none(case)
    if plan is None:
        return
    assert (
        plan.total_refunded(FundSource.CREDIT_MEMO)
        + plan.unrefunded_credit_memo_balance
        + plan.total_applied_to_invoices()
        == case.memo
    )
    assert plan.total_refunded(FundSource.EXCESS_FUNDS) + plan.unrefunded_excess_funds == case.excess
    assert plan.unrefunded_credit_memo_balance >= 0
    assert plan.unrefunded_excess_funds >= 0


@SETTINGS
@given(refund_cases())
def test_invoices_are_paid_in_order_and_never_overpaid(case):
    plan = plan_or_none(case)
    if plan is None:
        return
    balances = {i.invoice_id: i.balance for i in case.request.invoices_to_pay}
    paid_ids = [p.invoice_id for p in plan.invoice_payments]
    expected_order = [i.invoice_id for i in case.request.invoices_to_pay if i.invoice_id in paid_ids]
    assert paid_ids == expected_order
    for payment in plan.invoice_payments:
        assert payment.amount <= balances[payment.invoice_id]
    # Only the last invoice paid may be paid in part, and only if the memo ran out.
    for payment in plan.invoice_payments[:-1]:
        assert payment.amount == balances[payment.invoice_id]
    assert plan.total_applied_to_invoices() == case.memo - case.memo_after_invoices()


@SETTINGS
@given(refund_cases())
def test_steps_come_in_order_and_match_their_sources(case):
    plan = plan_or_none(case)
    if plan is None:
        return
    order = {AllocationStep.SEQUENCE: 0, AllocationStep.CREDIT_MEMO: 1, AllocationStep.EXCESS_FUNDS: 2}
    ranks = [order[a.step] for a in plan.allocations]
    assert ranks == sorted(ranks)
    for allocation in plan.allocations:
        if allocation.step is AllocationStep.CREDIT_MEMO:
            assert allocation.source is FundSource.CREDIT_MEMO
        if allocation.step is AllocationStep.EXCESS_FUNDS:
            assert allocation.source is FundSource.EXCESS_FUNDS
    if case.stops_at_step_2():
        assert all(a.step is AllocationStep.SEQUENCE for a in plan.allocations)


@SETTINGS
@given(refund_cases())
def test_same_input_gives_the_identical_plan(case):
    plan = plan_or_none(case)
    if plan is None:
        return
    again = plan_refunds(case.request, dict(case.available))
    assert again == plan
    assert [str(a.amount) for a in again.allocations] == [str(a.amount) for a in plan.allocations]


@SETTINGS
@given(refund_cases())
def test_inputs_are_not_mutated(case):
    available_before = dict(case.available)
    with contextlib.suppress(InsufficientAvailableToRefundError):
        plan_refunds(case.request, case.available)
    assert case.available == available_before
    assert list(case.available) == list(available_before)


@SETTINGS
@given(refund_cases())
def test_requesting_more_than_is_available_is_insufficient(case):
    if case.passes_step_1():
        return
    try:
        plan_refunds(case.request, case.available)
    except InsufficientAvailableToRefundError:
        return
    raise AssertionError(
        f"requested {case.requested()} > available {case.total_available()} was accepted"
    )


@SETTINGS
@given(refund_cases(with_sequences=False))
def test_without_sequences_a_request_within_the_total_always_succeeds(case):
    if not case.passes_step_1():
        return
    plan = plan_refunds(case.request, case.available)
    assert plan.total_refunded() == case.requested()
