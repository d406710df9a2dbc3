"""Seed 000 (Ensure Refunds Async), one behaviour per test, hand-computed (domain/allocation.py).

Every expected plan below was worked out by hand from the seed's steps:
step 0 pays invoicesToPay from the credit memo, step 1 checks the total, step 2 applies
sequences, step 3 refunds the credit memo and step 4 the excess funds (exact match, else
largest, repeated). Ties go to the first summary in the mapping's order.
"""

import copy
from decimal import Decimal
from types import MappingProxyType

import pytest

from domain.allocation import (
    AllocationStep,
    AllocationStrategy,
    FundSource,
    InvoicePayment,
    InvoiceToPay,
    PaymentRefundable,
    RefundAllocation,
    RefundRequest,
    SequenceEntry,
    plan_refunds,
    spread_over_payments,
)
from domain.errors import InsufficientAvailableToRefundError, InvalidInputError, InvariantViolationError

D = Decimal
CM, EF = FundSource.CREDIT_MEMO, FundSource.EXCESS_FUNDS
SEQ, STEP3, STEP4 = AllocationStep.SEQUENCE, AllocationStep.CREDIT_MEMO, AllocationStep.EXCESS_FUNDS


def usd(**amounts: str) -> dict[str, Decimal]:
    """Available-to-refund amounts keyed by summary id, in the order given."""
    return {sid: D(a) for sid, a in amounts.items()}


def request(
    memo: str | None = None,
    excess: str | None = None,
    *,
    invoices: tuple[tuple[str, str], ...] = (),
    sequences: tuple[tuple[str, str | None], ...] = (),
    partial: bool = False,
    strategy: AllocationStrategy = AllocationStrategy.EXACT_MATCH_ELSE_LARGEST,
    currency: str = "USD",
) -> RefundRequest:
    return RefundRequest(
        currency=currency,
        credit_memo_balance=None if memo is None else D(memo),
        excess_funds_amount=None if excess is None else D(excess),
        invoices_to_pay=tuple(InvoiceToPay(i, D(b)) for i, b in invoices),
        is_allow_partial=partial,
        sequences=tuple(SequenceEntry(s, None if a is None else D(a)) for s, a in sequences),
        strategy=strategy,
    )


def alloc(sid: str, amount: str, source: FundSource, step: AllocationStep) -> RefundAllocation:
    return RefundAllocation(sid, D(amount), source, step)


# --- step 3: the credit memo -----------------------------------------------------------


def test_exact_match_is_chosen_over_the_largest():
    plan = plan_refunds(request("30.00"), usd(A="20.00", B="30.00", C="50.00"))
    assert plan.allocations == (alloc("B", "30.00", CM, STEP3),)
    assert plan.unrefunded_credit_memo_balance == D("0")
    assert plan.unrefunded_excess_funds == D("0")
    assert plan.invoice_payments == ()


def test_without_exact_match_the_largest_is_refunded_first_then_the_rest_is_matched():
    # 70: no summary has 70 -> largest C (50); 20 left -> A has exactly 20.
    plan = plan_refunds(request("70.00"), usd(A="20.00", B="30.00", C="50.00"))
    assert plan.allocations == (alloc("C", "50.00", CM, STEP3), alloc("A", "20.00", CM, STEP3))


def test_largest_first_is_repeated_until_the_credit_memo_is_refunded():
    # 90: largest C (50), 40 left; no 40 -> largest B (30), 10 left; no 10 -> largest A (10 of 20).
    plan = plan_refunds(request("90.00"), usd(A="20.00", B="30.00", C="50.00"))
    assert plan.allocations == (
        alloc("C", "50.00", CM, STEP3),
        alloc("B", "30.00", CM, STEP3),
        alloc("A", "10.00", CM, STEP3),
    )
    assert plan.total_refunded() == D("90.00")
    assert plan.refunds_by_summary() == {"C": D("50.00"), "B": D("30.00"), "A": D("10.00")}


def test_a_summary_with_nothing_available_is_never_chosen():
    plan = plan_refunds(request("5.00"), usd(A="0.00", B="10.00"))
    assert plan.allocations == (alloc("B", "5.00", CM, STEP3),)


def test_the_whole_available_total_can_be_refunded():
    plan = plan_refunds(request("30.00", "30.00"), usd(A="30.00", B="30.00"))
    assert plan.allocations == (alloc("A", "30.00", CM, STEP3), alloc("B", "30.00", EF, STEP4))


def test_a_zero_credit_memo_balance_refunds_nothing():
    plan = plan_refunds(request("0.00"), usd(A="10.00"))
    assert plan.allocations == ()
    assert plan.unrefunded_credit_memo_balance == D("0")


# --- step 4: excess funds --------------------------------------------------------------


def test_excess_funds_alone_exact_match():
    plan = plan_refunds(request(excess="25.00"), usd(A="10.00", B="25.00", C="40.00"))
    assert plan.allocations == (alloc("B", "25.00", EF, STEP4),)
    assert plan.total_refunded(EF) == D("25.00")
    assert plan.total_refunded(CM) == D("0")


def test_excess_funds_alone_largest_then_repeat():
    # 40: no 40 -> largest B (35), 5 left -> no 5 -> largest A (5 of 10).
    plan = plan_refunds(request(excess="40.00"), usd(A="10.00", B="35.00"))
    assert plan.allocations == (alloc("B", "35.00", EF, STEP4), alloc("A", "5.00", EF, STEP4))
    assert plan.unrefunded_excess_funds == D("0")


# --- steps 3 then 4: credit memo and excess funds together -----------------------------


def test_credit_memo_is_refunded_in_step_3_then_excess_in_step_4():
    # Step 3: memo 30 exact A. Step 4: excess 20, A is now 0 -> largest B (20 of 40).
    plan = plan_refunds(request("30.00", "20.00"), usd(A="30.00", B="40.00"))
    assert plan.allocations == (alloc("A", "30.00", CM, STEP3), alloc("B", "20.00", EF, STEP4))
    assert plan.total_refunded(CM) == D("30.00")
    assert plan.total_refunded(EF) == D("20.00")


def test_step_4_looks_at_the_amounts_left_after_step_3():
    # Step 3: memo 30, no exact match -> largest A (30 of 50), A has 20 left.
    # Step 4: excess 20 now matches A (20) and B (20); A comes first. Had step 4 used
    # the original amounts, B would have been the only exact match.
    plan = plan_refunds(request("30.00", "20.00"), usd(A="50.00", B="20.00", C="25.00"))
    assert plan.allocations == (alloc("A", "30.00", CM, STEP3), alloc("A", "20.00", EF, STEP4))


def test_an_exact_match_used_up_by_step_3_is_no_longer_a_match_in_step_4():
    # Step 3: memo 20 exact A. Step 4: excess 20, A has 0 left -> B (20 of 50).
    plan = plan_refunds(request("20.00", "20.00"), usd(A="20.00", B="50.00"))
    assert plan.allocations == (alloc("A", "20.00", CM, STEP3), alloc("B", "20.00", EF, STEP4))


# --- step 2: sequences -----------------------------------------------------------------


def test_sequence_then_default_logic_when_partial_is_not_allowed():
    # Step 2: B 10 (B has 20 left); 40 still to refund, isAllowPartial false ->
    # step 3: memo 40 exactly matches A.
    plan = plan_refunds(request("50.00", sequences=(("B", "10.00"),)), usd(A="40.00", B="30.00"))
    assert plan.allocations == (alloc("B", "10.00", CM, SEQ), alloc("A", "40.00", CM, STEP3))
    assert plan.unrefunded_credit_memo_balance == D("0")


def test_a_sequence_without_an_amount_takes_what_its_summary_can_then_the_next_entry():
    # B has 30 of the 50 to refund; the next entry, A without an amount, takes the other 20.
    plan = plan_refunds(request("50.00", sequences=(("B", None), ("A", None))), usd(A="40.00", B="30.00"))
    assert plan.allocations == (alloc("B", "30.00", CM, SEQ), alloc("A", "20.00", CM, SEQ))
    # an entry without an amount on a summary with nothing left is passed over, not refused
    plan = plan_refunds(request("10.00", sequences=(("B", None), ("A", None)), partial=True), usd(A="40.00", B="0.00"))
    assert plan.allocations == (alloc("A", "10.00", CM, SEQ),)


def test_sequence_with_partial_allowed_leaves_the_rest_on_the_credit_memo():
    plan = plan_refunds(
        request("50.00", sequences=(("B", "10.00"),), partial=True), usd(A="40.00", B="30.00")
    )
    assert plan.allocations == (alloc("B", "10.00", CM, SEQ),)
    assert plan.unrefunded_credit_memo_balance == D("40.00")
    assert plan.unrefunded_excess_funds == D("0")


def test_sequence_with_partial_allowed_leaves_excess_funds_unrefunded_too():
    plan = plan_refunds(
        request("50.00", "5.00", sequences=(("B", "10.00"),), partial=True), usd(A="40.00", B="30.00")
    )
    assert plan.allocations == (alloc("B", "10.00", CM, SEQ),)
    assert plan.unrefunded_credit_memo_balance == D("40.00")
    assert plan.unrefunded_excess_funds == D("5.00")


def test_sequences_are_traversed_in_order_then_the_rest_goes_through_step_3():
    # Step 2: B 10, A 15 (A 35 left, B 40 left); 5 left -> no 5 -> largest B.
    plan = plan_refunds(
        request("30.00", sequences=(("B", "10.00"), ("A", "15.00"))), usd(A="50.00", B="50.00")
    )
    assert plan.allocations == (
        alloc("B", "10.00", CM, SEQ),
        alloc("A", "15.00", CM, SEQ),
        alloc("B", "5.00", CM, STEP3),
    )


def test_a_sequence_draws_on_the_credit_memo_first_then_on_excess_funds():
    # Step 2: A 8 = memo 5 + excess 3 (A 32 left); step 4: excess 7 exactly matches B.
    plan = plan_refunds(request("5.00", "10.00", sequences=(("A", "8.00"),)), usd(A="40.00", B="7.00"))
    assert plan.allocations == (
        alloc("A", "5.00", CM, SEQ),
        alloc("A", "3.00", EF, SEQ),
        alloc("B", "7.00", EF, STEP4),
    )


def test_sequence_amount_is_capped_at_what_remains_to_refund():
    # A's 30 is cut to the 20 to refund; the B entry is never reached.
    plan = plan_refunds(
        request("20.00", sequences=(("A", "30.00"), ("B", "10.00"))), usd(A="50.00", B="50.00")
    )
    assert plan.allocations == (alloc("A", "20.00", CM, SEQ),)
    assert plan.unrefunded_credit_memo_balance == D("0")


def test_sequences_that_refund_everything_stop_before_step_3():
    plan = plan_refunds(request("20.00", sequences=(("A", "20.00"),)), usd(A="20.00", B="20.00"))
    assert [a.step for a in plan.allocations] == [SEQ]


def test_is_allow_partial_is_ignored_without_sequences():
    plan = plan_refunds(request("30.00", partial=True), usd(A="20.00", B="20.00"))
    assert plan.allocations == (alloc("A", "20.00", CM, STEP3), alloc("B", "10.00", CM, STEP3))
    assert plan.unrefunded_credit_memo_balance == D("0")


def test_a_sequence_naming_a_foreign_summary_is_invalid_input():
    with pytest.raises(InvalidInputError) as excinfo:
        plan_refunds(request("10.00", sequences=(("Z", "5.00"),)), usd(A="10.00"))
    assert not isinstance(excinfo.value, InsufficientAvailableToRefundError)
    assert excinfo.value.error_code == "INVALID_INPUT"


def test_a_sequence_above_its_summary_available_is_insufficient():
    # The total (110) covers the memo; the sequence asks A for more than A's 10.
    with pytest.raises(InsufficientAvailableToRefundError):
        plan_refunds(request("50.00", sequences=(("A", "20.00"),)), usd(A="10.00", B="100.00"))


def test_sequences_on_one_summary_are_checked_against_what_is_left_of_it():
    # A 8 leaves A with 2; the second 8 is more than that.
    with pytest.raises(InsufficientAvailableToRefundError):
        plan_refunds(
            request("50.00", sequences=(("A", "8.00"), ("A", "8.00"))), usd(A="10.00", B="100.00")
        )


def test_a_non_positive_sequence_amount_is_invalid_input():
    for amount in ("0.00", "-1.00"):
        with pytest.raises(InvalidInputError):
            plan_refunds(request("10.00", sequences=(("A", amount),)), usd(A="10.00"))


# --- step 0: invoicesToPay -------------------------------------------------------------


def test_invoices_are_paid_from_the_credit_memo_before_refunding():
    # Memo 50 pays 10 + 5, 35 left -> exactly A.
    plan = plan_refunds(
        request("50.00", invoices=(("I1", "10.00"), ("I2", "5.00"))), usd(A="35.00", B="100.00")
    )
    assert plan.invoice_payments == (InvoicePayment("I1", D("10.00")), InvoicePayment("I2", D("5.00")))
    assert plan.total_applied_to_invoices() == D("15.00")
    assert plan.allocations == (alloc("A", "35.00", CM, STEP3),)
    assert plan.unrefunded_credit_memo_balance == D("0")


def test_an_invoice_larger_than_the_credit_memo_is_paid_in_part_and_nothing_is_refunded():
    plan = plan_refunds(request("20.00", invoices=(("I1", "30.00"), ("I2", "5.00"))), usd(A="100.00"))
    assert plan.invoice_payments == (InvoicePayment("I1", D("20.00")),)
    assert plan.allocations == ()
    assert plan.unrefunded_credit_memo_balance == D("0")


def test_excess_funds_are_still_refunded_when_invoices_use_up_the_credit_memo():
    plan = plan_refunds(request("20.00", "10.00", invoices=(("I1", "30.00"),)), usd(A="100.00"))
    assert plan.invoice_payments == (InvoicePayment("I1", D("20.00")),)
    assert plan.allocations == (alloc("A", "10.00", EF, STEP4),)


def test_step_1_checks_the_credit_memo_balance_left_after_invoices():
    # 50 would exceed A's 30; after paying the 20 invoice only 30 is to be refunded.
    plan = plan_refunds(request("50.00", invoices=(("I1", "20.00"),)), usd(A="30.00"))
    assert plan.allocations == (alloc("A", "30.00", CM, STEP3),)


def test_a_zero_balance_invoice_gets_no_payment():
    plan = plan_refunds(request("10.00", invoices=(("I0", "0.00"), ("I1", "4.00"))), usd(A="6.00"))
    assert plan.invoice_payments == (InvoicePayment("I1", D("4.00")),)
    assert plan.allocations == (alloc("A", "6.00", CM, STEP3),)


def test_invoices_to_pay_without_a_credit_memo_is_invalid_input():
    with pytest.raises(InvalidInputError):
        plan_refunds(request(excess="10.00", invoices=(("I1", "5.00"),)), usd(A="100.00"))


def test_a_negative_invoice_balance_is_invalid_input():
    with pytest.raises(InvalidInputError):
        plan_refunds(request("10.00", invoices=(("I1", "-5.00"),)), usd(A="100.00"))


# --- step 1 and input validation --------------------------------------------------------


@pytest.mark.parametrize(("memo", "excess"), [("60.01", None), (None, "60.01"), ("30.00", "30.01")])
def test_more_than_the_total_available_is_refused_by_step_1(memo, excess):
    with pytest.raises(InsufficientAvailableToRefundError) as excinfo:
        plan_refunds(request(memo, excess), usd(A="30.00", B="30.00"))
    assert excinfo.value.error_code == "INSUFFICIENT_AVAILABLE_TO_REFUND"


def test_step_1_runs_before_sequences_even_with_partial_allowed():
    with pytest.raises(InsufficientAvailableToRefundError):
        plan_refunds(request("100.00", sequences=(("A", "5.00"),), partial=True), usd(A="30.00"))


def test_no_summaries_at_all_is_insufficient():
    with pytest.raises(InsufficientAvailableToRefundError):
        plan_refunds(request("1.00"), {})


@pytest.mark.parametrize("excess", ["0", "0.00", "-5.00"])
def test_zero_or_negative_excess_funds_are_refused(excess):
    with pytest.raises(InvalidInputError):
        plan_refunds(request(excess=excess), usd(A="100.00"))


def test_a_negative_credit_memo_balance_is_refused():
    with pytest.raises(InvalidInputError):
        plan_refunds(request("-1.00"), usd(A="100.00"))


def test_a_negative_available_amount_is_refused():
    with pytest.raises(InvalidInputError):
        plan_refunds(request("1.00"), usd(A="100.00", B="-1.00"))


def test_neither_credit_memo_nor_excess_funds_is_invalid_input():
    with pytest.raises(InvalidInputError):
        plan_refunds(request(), usd(A="100.00"))


@pytest.mark.parametrize(
    "make",
    [
        lambda: RefundRequest("USD", credit_memo_balance=10.0),  # float
        lambda: RefundRequest("USD", excess_funds_amount="10.00"),  # str
        lambda: RefundRequest("USD", credit_memo_balance=D("10.005")),  # too fine for USD
        lambda: RefundRequest("USD", sequences=(SequenceEntry("A", 5),), credit_memo_balance=D("10")),
        lambda: RefundRequest("US", credit_memo_balance=D("10.00")),  # bad currency
    ],
)
def test_malformed_amounts_and_currencies_are_invalid_input(make):
    with pytest.raises(InvalidInputError):
        plan_refunds(make(), usd(A="100.00"))


def test_available_amounts_finer_than_the_minor_unit_are_refused():
    with pytest.raises(InvalidInputError):
        plan_refunds(request("1.00"), usd(A="100.001"))


def test_amounts_are_quantized_to_the_currency_minor_unit():
    plan = plan_refunds(request("30", "5"), usd(A="30", B="10"))
    assert [str(a.amount) for a in plan.allocations] == ["30.00", "5.00"]


def test_zero_decimal_currency():
    # JPY: 1000, no exact -> largest A (600), then B exactly 400.
    plan = plan_refunds(request("1000", currency="JPY"), usd(A="600", B="400"))
    assert plan.allocations == (alloc("A", "600", CM, STEP3), alloc("B", "400", CM, STEP3))
    with pytest.raises(InvalidInputError):
        plan_refunds(request("10.5", currency="JPY"), usd(A="600"))


def test_sequence_and_invoice_amounts_are_quantized_in_the_plan():
    plan = plan_refunds(
        request("10.00", invoices=(("I1", "3"),), sequences=(("A", "4.000"),)), usd(A="20.00")
    )
    amounts = [p.amount for p in plan.invoice_payments] + [a.amount for a in plan.allocations]
    amounts.append(plan.unrefunded_credit_memo_balance)
    assert all(a.as_tuple().exponent == -2 for a in amounts), amounts


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_non_finite_amounts_are_invalid_input(value):
    with pytest.raises(InvalidInputError):
        plan_refunds(RefundRequest("USD", excess_funds_amount=D(value)), usd(A="100.00"))


# --- deterministic tie-break -----------------------------------------------------------


def test_exact_match_tie_goes_to_the_first_summary_in_order():
    assert plan_refunds(request("20.00"), usd(A="10.00", B="20.00", C="20.00")).allocations == (
        alloc("B", "20.00", CM, STEP3),
    )
    assert plan_refunds(request("20.00"), usd(C="20.00", B="20.00", A="10.00")).allocations == (
        alloc("C", "20.00", CM, STEP3),
    )


def test_largest_tie_goes_to_the_first_summary_in_order():
    assert plan_refunds(request("25.00"), usd(A="10.00", B="30.00", C="30.00")).allocations == (
        alloc("B", "25.00", CM, STEP3),
    )
    assert plan_refunds(request("25.00"), usd(C="30.00", B="30.00", A="10.00")).allocations == (
        alloc("C", "25.00", CM, STEP3),
    )


def test_tie_break_holds_when_repeating():
    # 50: A and B tie at 30 -> A; 20 left -> B (20 of 30).
    plan = plan_refunds(request("50.00"), usd(A="30.00", B="30.00"))
    assert plan.allocations == (alloc("A", "30.00", CM, STEP3), alloc("B", "20.00", CM, STEP3))


# --- FEWEST_PAYMENTS strategy ----------------------------------------------------------

FEWEST = AllocationStrategy.FEWEST_PAYMENTS


def test_fewest_payments_picks_the_smallest_covering_summary():
    available = usd(A="100.00", B="30.00", C="26.00", D="10.00")
    assert plan_refunds(request("25.00", strategy=FEWEST), available).allocations == (
        alloc("C", "25.00", CM, STEP3),
    )
    # The seed's default strategy picks the largest.
    assert plan_refunds(request("25.00"), available).allocations == (alloc("A", "25.00", CM, STEP3),)


def test_fewest_payments_still_prefers_an_exact_match():
    plan = plan_refunds(request("30.00", strategy=FEWEST), usd(A="100.00", B="30.00", C="31.00"))
    assert plan.allocations == (alloc("B", "30.00", CM, STEP3),)


def test_fewest_payments_falls_back_to_the_largest_when_none_covers():
    # 120: nothing covers -> A (100); 20 left -> B (30) and C (25) cover it, C is smaller.
    plan = plan_refunds(request("120.00", strategy=FEWEST), usd(A="100.00", B="30.00", C="25.00"))
    assert plan.allocations == (alloc("A", "100.00", CM, STEP3), alloc("C", "20.00", CM, STEP3))


def test_fewest_payments_tie_goes_to_the_first_summary_in_order():
    assert plan_refunds(request("25.00", strategy=FEWEST), usd(A="30.00", B="30.00")).allocations == (
        alloc("A", "25.00", CM, STEP3),
    )
    assert plan_refunds(request("25.00", strategy=FEWEST), usd(B="30.00", A="30.00")).allocations == (
        alloc("B", "25.00", CM, STEP3),
    )


def test_fewest_payments_applies_to_excess_funds_too():
    plan = plan_refunds(request(excess="5.00", strategy=FEWEST), usd(A="50.00", B="6.00"))
    assert plan.allocations == (alloc("B", "5.00", EF, STEP4),)


# --- spread_over_payments --------------------------------------------------------------


def payments(**amounts: str) -> list[PaymentRefundable]:
    return [PaymentRefundable(pid, D(a)) for pid, a in amounts.items()]


def test_spread_exact_match():
    assert spread_over_payments(D("30.00"), payments(P1="20.00", P2="30.00", P3="50.00")) == [
        ("P2", D("30.00"))
    ]


def test_spread_largest_first_then_repeat():
    # 60: largest P3 (50); 10 left -> no 10 -> largest P2 (10 of 30).
    assert spread_over_payments(D("60.00"), payments(P1="20.00", P2="30.00", P3="50.00")) == [
        ("P3", D("50.00")),
        ("P2", D("10.00")),
    ]


def test_spread_tie_goes_to_the_earliest_payment():
    assert spread_over_payments(D("10.00"), payments(P1="10.00", P2="10.00")) == [("P1", D("10.00"))]
    assert spread_over_payments(D("5.00"), payments(P1="10.00", P2="10.00")) == [("P1", D("5.00"))]


def test_spread_of_nothing_is_empty():
    assert spread_over_payments(D("0.00"), payments(P1="10.00")) == []


def test_spread_raises_invariant_violation_when_payments_cannot_cover():
    with pytest.raises(InvariantViolationError) as excinfo:
        spread_over_payments(D("60.00"), payments(P1="20.00", P2="30.00"))
    assert excinfo.value.http_status == 500


def test_spread_does_not_mutate_the_payments():
    given = payments(P1="20.00", P2="30.00")
    before = copy.deepcopy(given)
    spread_over_payments(D("40.00"), given)
    assert given == before


# --- purity ----------------------------------------------------------------------------


def test_plan_refunds_does_not_mutate_its_inputs():
    available = usd(A="50.00", B="20.00", C="25.00")
    req = request(
        "60.00", "20.00", invoices=(("I1", "10.00"),), sequences=(("C", "5.00"),), partial=False
    )
    available_before = dict(available)
    order_before = list(available)
    req_before = copy.deepcopy(req)

    plan = plan_refunds(req, available)

    assert plan.total_refunded() == D("70.00")
    assert available == available_before
    assert list(available) == order_before
    assert req == req_before


def test_plan_refunds_accepts_a_read_only_mapping():
    available = MappingProxyType(usd(A="50.00", B="20.00"))
    plan = plan_refunds(request("60.00"), available)
    assert plan.allocations == (alloc("A", "50.00", CM, STEP3), alloc("B", "10.00", CM, STEP3))
    assert dict(available) == usd(A="50.00", B="20.00")
