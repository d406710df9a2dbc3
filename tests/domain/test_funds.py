"""Ensure Funds (domain/funds.py): hand-computed examples, then properties checked with hypothesis.

Every expected plan below was worked out by hand from the three steps:
step 1 checks that the captured balances not yet applied plus what can still be captured
cover the invoice balance, step 2 applies captured payments' unapplied balances and
step 3 captures authorizations for the rest, each step by the seed's rule (the amount
that matches exactly, else the largest, repeated). Ties go to the first id in the
mapping's order.

In the properties, amounts are generated as whole cents divided by 100 (so Decimal('10')
and Decimal('10.5') occur as well as Decimal('10.25')), partly from a small pool so
that equal amounts, and hence ties, are common.
"""

import copy
from decimal import Decimal
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import InvalidInputError
from domain.funds import (
    FundsPlan,
    InsufficientFundsError,
    apply_captured_balance,
    capture_authorizations,
    check_funds_cover,
    plan_funds,
)

D = Decimal


def amounts(**by_id: str) -> dict[str, Decimal]:
    """Amounts keyed by payment or authorization id, in the order given."""
    return {sid: D(a) for sid, a in by_id.items()}


def pairs(*items: tuple[str, str]) -> tuple[tuple[str, Decimal], ...]:
    return tuple((sid, D(a)) for sid, a in items)


def plan(balance: str, captured: dict[str, Decimal] | None = None, capturable: dict[str, Decimal] | None = None,
         currency: str = "USD") -> FundsPlan:
    return plan_funds(currency, D(balance), captured or {}, capturable or {})


# --- step 2: captured payments' unapplied balances --------------------------------------


def test_exact_match_of_a_captured_balance_is_chosen_over_the_largest():
    result = plan("30.00", amounts(P1="20.00", P2="30.00", P3="50.00"), amounts(A1="100.00"))
    assert result.applications == pairs(("P2", "30.00"))
    assert result.captures == ()
    assert result.total() == D("30.00")
    assert result.currency == "USD"


def test_without_exact_match_the_largest_captured_balance_is_applied_then_the_rest_matched():
    # 70: no payment has 70 -> largest P3 (50); 20 left -> P1 has exactly 20.
    result = plan("70.00", amounts(P1="20.00", P2="30.00", P3="50.00"))
    assert result.applications == pairs(("P3", "50.00"), ("P1", "20.00"))
    assert result.captures == ()


def test_largest_first_is_repeated_across_payments():
    # 90: largest P3 (50), 40 left; no 40 -> largest P2 (30), 10 left; no 10 -> P1 (10 of 20).
    result = plan("90.00", amounts(P1="20.00", P2="30.00", P3="50.00"))
    assert result.applications == pairs(("P3", "50.00"), ("P2", "30.00"), ("P1", "10.00"))
    assert result.captures == ()
    assert result.total() == D("90.00")


def test_a_part_of_the_largest_captured_balance_is_applied_when_it_covers_the_invoice():
    # 25: no exact -> largest P2 (25 of 40); P1's 10 stays unapplied.
    result = plan("25.00", amounts(P1="10.00", P2="40.00"), amounts(A1="25.00"))
    assert result.applications == pairs(("P2", "25.00"))
    assert result.captures == ()


def test_the_largest_is_chosen_not_the_smallest_that_covers():
    # 25: no exact; P1 (30) would cover it with less left over, but the rule is the largest.
    assert plan("25.00", amounts(P1="30.00", P2="50.00")).applications == pairs(("P2", "25.00"))
    assert plan("25.00", capturable=amounts(A1="30.00", A2="50.00")).captures == pairs(("A2", "25.00"))


def test_captured_balances_are_used_before_any_capture_even_when_an_authorization_matches():
    # 30: A1 would match exactly, but captured balances come first: P1 (20), then 10 from A2.
    result = plan("30.00", amounts(P1="20.00"), amounts(A1="30.00", A2="10.00"))
    assert result.applications == pairs(("P1", "20.00"))
    assert result.captures == pairs(("A2", "10.00"))


def test_captured_balances_covering_the_invoice_capture_nothing():
    result = plan("40.00", amounts(P1="15.00", P2="25.00"), amounts(A1="40.00"))
    assert result.applications == pairs(("P2", "25.00"), ("P1", "15.00"))
    assert result.captures == ()


# --- step 3: capturing authorizations ---------------------------------------------------


def test_exact_match_of_an_authorization_is_captured_over_the_largest():
    result = plan("30.00", capturable=amounts(A1="20.00", A2="30.00", A3="50.00"))
    assert result.applications == ()
    assert result.captures == pairs(("A2", "30.00"))


def test_without_exact_match_the_largest_authorization_is_captured_then_repeated():
    # 90: largest A3 (50), 40 left; no 40 -> A2 (30), 10 left; no 10 -> A1 (10 of 20).
    result = plan("90.00", capturable=amounts(A1="20.00", A2="30.00", A3="50.00"))
    assert result.captures == pairs(("A3", "50.00"), ("A2", "30.00"), ("A1", "10.00"))
    # 70: largest A3 (50); 20 left -> A1 exactly.
    result = plan("70.00", capturable=amounts(A1="20.00", A2="30.00", A3="50.00"))
    assert result.captures == pairs(("A3", "50.00"), ("A1", "20.00"))


def test_mixed_some_applied_and_the_rest_captured():
    # Step 2: 100, no exact -> P2 (30), 70 left -> P1 (20), 50 left; captured used up.
    # Step 3: 50, no exact -> A2 (40), 10 left -> A3 exactly 10 (A1 15 is larger but not exact).
    result = plan(
        "100.00", amounts(P1="20.00", P2="30.00"), amounts(A1="15.00", A2="40.00", A3="10.00")
    )
    assert result.applications == pairs(("P2", "30.00"), ("P1", "20.00"))
    assert result.captures == pairs(("A2", "40.00"), ("A3", "10.00"))
    assert result.total() == D("100.00")


def test_step_3_matches_against_what_remains_after_step_2():
    # Step 2: 50 -> P1 (20), 30 left. Step 3: 30 matches A1 exactly (not the larger A2).
    result = plan("50.00", amounts(P1="20.00"), amounts(A1="30.00", A2="40.00"))
    assert result.applications == pairs(("P1", "20.00"))
    assert result.captures == pairs(("A1", "30.00"))


def test_the_docstring_example():
    result = plan_funds("USD", D("50.00"), {"p1": D("20.00")}, {"a1": D("30.00"), "a2": D("40.00")})
    assert (result.applications, result.captures) == ((("p1", D("20.00")),), (("a1", D("30.00")),))


# --- step 1: funds must cover the invoice balance ---------------------------------------


@pytest.mark.parametrize(
    ("balance", "captured", "capturable"),
    [
        ("60.01", amounts(P1="30.00"), amounts(A1="30.00")),
        ("30.01", amounts(P1="30.00"), {}),
        ("30.01", {}, amounts(A1="30.00")),
        ("0.01", {}, {}),
        ("1.00", amounts(P1="0.00"), amounts(A1="0.00")),
    ],
)
def test_insufficient_funds_are_refused(balance, captured, capturable):
    with pytest.raises(InsufficientFundsError) as excinfo:
        plan_funds("USD", D(balance), captured, capturable)
    assert isinstance(excinfo.value, InvalidInputError)
    assert excinfo.value.error_code == "INSUFFICIENT_FUNDS"
    assert excinfo.value.http_status == 400


def test_insufficient_funds_error_is_an_invalid_input_error():
    assert issubclass(InsufficientFundsError, InvalidInputError)
    assert InsufficientFundsError.error_code == "INSUFFICIENT_FUNDS"


def test_funds_exactly_at_the_invoice_balance_succeed():
    result = plan("60.00", amounts(P1="25.00", P2="5.00"), amounts(A1="10.00", A2="20.00"))
    assert result.applications == pairs(("P1", "25.00"), ("P2", "5.00"))
    assert result.captures == pairs(("A2", "20.00"), ("A1", "10.00"))
    assert result.total() == D("60.00")


def test_captured_alone_exactly_at_the_limit_and_authorizations_alone_exactly_at_the_limit():
    assert plan("30.00", amounts(P1="10.00", P2="20.00")).applications == pairs(("P2", "20.00"), ("P1", "10.00"))
    assert plan("30.00", capturable=amounts(A1="10.00", A2="20.00")).captures == pairs(("A2", "20.00"), ("A1", "10.00"))


def test_check_funds_cover_on_its_own():
    check_funds_cover(D("30.00"), amounts(P1="10.00"), amounts(A1="20.00"))  # exactly: no error
    with pytest.raises(InsufficientFundsError):
        check_funds_cover(D("30.01"), amounts(P1="10.00"), amounts(A1="20.00"))


def test_apply_captured_balance_on_its_own_returns_what_remains():
    applications, remaining = apply_captured_balance(D("50.00"), amounts(P1="20.00", P2="10.00"))
    assert applications == [("P1", D("20.00")), ("P2", D("10.00"))]
    assert remaining == D("20.00")
    assert apply_captured_balance(D("5.00"), {}) == ([], D("5.00"))


def test_capture_authorizations_on_its_own():
    assert capture_authorizations(D("25.00"), amounts(A1="10.00", A2="25.00")) == [("A2", D("25.00"))]
    assert capture_authorizations(D("0.00"), amounts(A1="10.00")) == []


# --- input validation -------------------------------------------------------------------


@pytest.mark.parametrize("balance", ["0", "0.00", "-0.00", "-0.01", "-10.00"])
def test_zero_or_negative_invoice_balance_is_refused(balance):
    with pytest.raises(InvalidInputError) as excinfo:
        plan(balance, amounts(P1="100.00"), amounts(A1="100.00"))
    assert not isinstance(excinfo.value, InsufficientFundsError)
    assert excinfo.value.error_code == "INVALID_INPUT"


@pytest.mark.parametrize(
    ("captured", "capturable"),
    [
        (amounts(P1="-1.00"), {}),
        (amounts(P1="100.00", P2="-0.01"), amounts(A1="10.00")),
        ({}, amounts(A1="-5.00")),
        (amounts(P1="100.00"), amounts(A1="10.00", A2="-10.00")),
    ],
)
def test_negative_source_amounts_are_refused(captured, capturable):
    # Refused even where the positive sources alone would cover the invoice.
    with pytest.raises(InvalidInputError) as excinfo:
        plan_funds("USD", D("1.00"), captured, capturable)
    assert not isinstance(excinfo.value, InsufficientFundsError)
    assert excinfo.value.error_code == "INVALID_INPUT"


@pytest.mark.parametrize(
    ("balance", "captured", "capturable"),
    [
        ("10.005", amounts(P1="100.00"), {}),
        ("10.00", amounts(P1="10.005"), {}),
        ("10.00", {}, amounts(A1="10.005")),
        ("10.00", amounts(P1="5.00"), amounts(A1="5.001")),
    ],
)
def test_amounts_finer_than_the_minor_unit_are_refused(balance, captured, capturable):
    with pytest.raises(InvalidInputError):
        plan_funds("USD", D(balance), captured, capturable)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_amounts_are_refused(value):
    with pytest.raises(InvalidInputError):
        plan(value, amounts(P1="10.00"))
    with pytest.raises(InvalidInputError):
        plan("1.00", amounts(P1=value))
    with pytest.raises(InvalidInputError):
        plan("1.00", capturable=amounts(A1=value))


@pytest.mark.parametrize("currency", ["US", "ABCD", "ZZZ", "U$D"])
def test_an_unknown_currency_is_refused(currency):
    with pytest.raises(InvalidInputError):
        plan("10.00", amounts(P1="10.00"), currency=currency)


def test_amounts_are_quantized_to_cents_in_the_plan():
    result = plan("45", amounts(P1="30", P2="10.5"), amounts(A1="4.5"))
    amounts_out = [a for _, a in result.applications + result.captures]
    assert [str(a) for a in amounts_out] == ["30.00", "10.50", "4.50"]
    assert all(a.as_tuple().exponent == -2 for a in amounts_out)


def test_jpy_has_no_minor_unit():
    # 1000: no exact -> P1 (600); 400 left -> A1 exactly.
    result = plan("1000", amounts(P1="600"), amounts(A2="500", A1="400"), currency="JPY")
    assert result.applications == pairs(("P1", "600"))
    assert result.captures == pairs(("A1", "400"))
    assert all(a.as_tuple().exponent == 0 for _, a in result.applications + result.captures)
    with pytest.raises(InvalidInputError):
        plan("10.5", amounts(P1="600"), currency="JPY")
    with pytest.raises(InvalidInputError):
        plan("10", amounts(P1="600.5"), currency="JPY")


def test_kwd_has_three_decimal_places():
    # 10.005 is valid in KWD: P1 (7.500); 2.505 left -> A1 exactly.
    result = plan("10.005", amounts(P1="7.5"), amounts(A2="3.000", A1="2.505"), currency="KWD")
    assert result.applications == pairs(("P1", "7.500"))
    assert result.captures == pairs(("A1", "2.505"))
    assert [str(a) for _, a in result.applications + result.captures] == ["7.500", "2.505"]
    with pytest.raises(InvalidInputError):
        plan("10.0005", amounts(P1="20"), currency="KWD")
    with pytest.raises(InsufficientFundsError):
        plan("10.006", amounts(P1="10.005"), currency="KWD")


# --- zero-valued sources ----------------------------------------------------------------


def test_zero_valued_sources_are_skipped():
    result = plan(
        "15.00", amounts(P0="0.00", P1="5.00", P2="0"), amounts(A0="0.00", A1="10.00", A2="0.00")
    )
    assert result.applications == pairs(("P1", "5.00"))
    assert result.captures == pairs(("A1", "10.00"))


def test_only_zero_valued_captured_balances_go_straight_to_captures():
    result = plan("10.00", amounts(P0="0.00"), amounts(A1="10.00"))
    assert result.applications == ()
    assert result.captures == pairs(("A1", "10.00"))


# --- deterministic tie-break ------------------------------------------------------------


def test_exact_match_tie_goes_to_the_earliest_payment():
    assert plan("20.00", amounts(P1="10.00", P2="20.00", P3="20.00")).applications == pairs(("P2", "20.00"))
    assert plan("20.00", amounts(P3="20.00", P2="20.00", P1="10.00")).applications == pairs(("P3", "20.00"))


def test_largest_tie_goes_to_the_earliest_payment():
    assert plan("25.00", amounts(P1="10.00", P2="30.00", P3="30.00")).applications == pairs(("P2", "25.00"))
    assert plan("25.00", amounts(P3="30.00", P2="30.00", P1="10.00")).applications == pairs(("P3", "25.00"))


def test_ties_go_to_the_earliest_authorization():
    assert plan("20.00", capturable=amounts(A2="20.00", A1="20.00")).captures == pairs(("A2", "20.00"))
    assert plan("25.00", capturable=amounts(A2="30.00", A1="30.00")).captures == pairs(("A2", "25.00"))
    assert plan("25.00", capturable=amounts(A1="30.00", A2="30.00")).captures == pairs(("A1", "25.00"))


def test_tie_break_holds_when_repeating():
    # 50: P1 and P2 tie at 30 -> P1; 20 left -> P2 (20 of 30).
    assert plan("50.00", amounts(P1="30.00", P2="30.00")).applications == pairs(("P1", "30.00"), ("P2", "20.00"))
    # Step 3 likewise: 50 -> A1 (30); 20 left -> A2 (20 of 30).
    assert plan("50.00", capturable=amounts(A1="30.00", A2="30.00")).captures == pairs(("A1", "30.00"), ("A2", "20.00"))


def test_same_inputs_give_the_same_plan():
    args = ("USD", D("75.00"), amounts(P1="20.00", P2="20.00"), amounts(A1="20.00", A2="35.00", A3="35.00"))
    first = plan_funds(*args)
    assert first == plan_funds(*args)
    assert first.applications == pairs(("P1", "20.00"), ("P2", "20.00"))
    assert first.captures == pairs(("A2", "35.00"))


# --- purity -----------------------------------------------------------------------------


def test_plan_funds_does_not_mutate_its_inputs():
    captured = amounts(P1="20.00", P2="30.00")
    capturable = amounts(A1="15.00", A2="40.00", A3="10.00")
    captured_before, capturable_before = copy.deepcopy(captured), copy.deepcopy(capturable)

    result = plan_funds("USD", D("100.00"), captured, capturable)

    assert result.total() == D("100.00")
    assert captured == captured_before and list(captured) == list(captured_before)
    assert capturable == capturable_before and list(capturable) == list(capturable_before)


def test_the_step_functions_do_not_mutate_their_inputs():
    captured = amounts(P1="20.00", P2="30.00")
    capturable = amounts(A1="15.00", A2="40.00")
    apply_captured_balance(D("45.00"), captured)
    capture_authorizations(D("50.00"), capturable)
    check_funds_cover(D("100.00"), captured, capturable)
    assert captured == amounts(P1="20.00", P2="30.00")
    assert capturable == amounts(A1="15.00", A2="40.00")
    # Read-only mappings are accepted too.
    assert apply_captured_balance(D("45.00"), MappingProxyType(captured)) == (
        [("P2", D("30.00")), ("P1", D("15.00"))],
        D("0.00"),
    )


def test_plan_funds_accepts_read_only_mappings():
    captured = MappingProxyType(amounts(P1="20.00"))
    capturable = MappingProxyType(amounts(A1="30.00", A2="40.00"))
    result = plan_funds("USD", D("50.00"), captured, capturable)
    assert result.applications == pairs(("P1", "20.00"))
    assert result.captures == pairs(("A1", "30.00"))
    assert dict(captured) == amounts(P1="20.00")
    assert dict(capturable) == amounts(A1="30.00", A2="40.00")


def test_the_plan_is_immutable():
    result = plan("10.00", amounts(P1="10.00"))
    with pytest.raises(AttributeError):
        result.applications = ()  # type: ignore[misc]


# --- properties -------------------------------------------------------------------------

CENT = Decimal("0.01")
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POOL = [0, 100, 500, 1000, 1050, 2500]  # cents; repeats make ties


def cents(n: int) -> Decimal:
    return Decimal(n) / 100


@st.composite
def funds_cases(draw) -> tuple[Decimal, dict[str, Decimal], dict[str, Decimal]]:
    def sources(prefix: str) -> dict[str, Decimal]:
        values = draw(st.lists(st.one_of(st.sampled_from(POOL), st.integers(0, 10_000)), max_size=5))
        return {f"{prefix}{i}": cents(v) for i, v in enumerate(values)}

    captured, capturable = sources("P"), sources("A")
    captured_cents = int(sum(captured.values(), D(0)) * 100)
    total_cents = captured_cents + int(sum(capturable.values(), D(0)) * 100)
    # Mostly within the funds (often beyond the captured balances, so that authorizations
    # are captured, or exactly a source or the total), sometimes above them.
    balance_cents = draw(
        st.one_of(
            st.integers(1, max(total_cents, 1)),
            st.integers(captured_cents + 1, max(total_cents, captured_cents + 1)),
            st.sampled_from(sorted({max(1, int(v * 100)) for v in (*captured.values(), *capturable.values())} | {max(total_cents, 1)})),
            st.integers(total_cents + 1, total_cents + 500),
        )
    )
    return cents(balance_cents), captured, capturable


def covers(balance: Decimal, captured: dict[str, Decimal], capturable: dict[str, Decimal]) -> bool:
    return sum(captured.values(), D(0)) + sum(capturable.values(), D(0)) >= balance


@SETTINGS
@given(funds_cases())
def test_property_funds_that_cover_pay_the_balance_exactly(case):
    balance, captured, capturable = case
    if not covers(balance, captured, capturable):
        return
    result = plan_funds("USD", balance, captured, capturable)
    assert result.total() == balance
    # Step 2 applies as much as the captured balances allow, step 3 captures the rest.
    applied = sum((a for _, a in result.applications), D(0))
    assert applied == min(balance, sum(captured.values(), D(0)))
    assert sum((c for _, c in result.captures), D(0)) == balance - applied


@SETTINGS
@given(funds_cases())
def test_property_no_source_gives_more_than_it_has(case):
    balance, captured, capturable = case
    if not covers(balance, captured, capturable):
        return
    result = plan_funds("USD", balance, captured, capturable)
    for given_out, sources in ((result.applications, captured), (result.captures, capturable)):
        ids = [sid for sid, _ in given_out]
        assert len(ids) == len(set(ids))  # each source is used at most once
        for sid, amount in given_out:
            assert sid in sources
            assert amount <= sources[sid]


@SETTINGS
@given(funds_cases())
def test_property_every_amount_is_positive_whole_cents(case):
    balance, captured, capturable = case
    if not covers(balance, captured, capturable):
        return
    result = plan_funds("USD", balance, captured, capturable)
    for _, amount in result.applications + result.captures:
        assert amount > 0
        assert amount == amount.quantize(CENT)
        assert amount.as_tuple().exponent == -2


@SETTINGS
@given(funds_cases())
def test_property_nothing_is_captured_while_a_captured_balance_is_unapplied(case):
    balance, captured, capturable = case
    if not covers(balance, captured, capturable):
        return
    result = plan_funds("USD", balance, captured, capturable)
    if result.captures:
        assert sum((a for _, a in result.applications), D(0)) == sum(captured.values(), D(0))


@SETTINGS
@given(funds_cases())
def test_property_same_input_gives_the_identical_plan_and_inputs_are_not_mutated(case):
    balance, captured, capturable = case
    captured_before, capturable_before = dict(captured), dict(capturable)
    try:
        first = plan_funds("USD", balance, captured, capturable)
    except InsufficientFundsError:
        first = None
    assert captured == captured_before and list(captured) == list(captured_before)
    assert capturable == capturable_before and list(capturable) == list(capturable_before)
    if first is None:
        return
    again = plan_funds("USD", balance, dict(captured), dict(capturable))
    assert again == first
    assert [str(a) for _, a in again.applications + again.captures] == [
        str(a) for _, a in first.applications + first.captures
    ]


@SETTINGS
@given(funds_cases())
def test_property_funds_that_do_not_cover_are_insufficient(case):
    balance, captured, capturable = case
    if covers(balance, captured, capturable):
        return
    with pytest.raises(InsufficientFundsError):
        plan_funds("USD", balance, captured, capturable)


def test_amounts_must_be_exact_and_the_currency_is_normalized():
    with pytest.raises(InvalidInputError):
        plan_funds("USD", 10.0, {}, {"a": Decimal("10.00")})  # a binary float is not an amount
    plan = plan_funds("usd", 10, {"p": Decimal("10.00")}, {})  # an int is exact
    assert plan.currency == "USD" and plan.applications == (("p", Decimal("10.00")),)


# --- isAllowPartial false: one source pays it all ------------------------------------------


def single(balance: str, captured: dict[str, Decimal] | None = None,
           capturable: dict[str, Decimal] | None = None) -> FundsPlan:
    return plan_funds("USD", D(balance), captured or {}, capturable or {}, allow_partial=False)


def test_without_partial_one_captured_balance_that_covers_is_applied():
    # Partial would apply P1 (exact) ... here P2 and P3 both cover 30.00: exact match first, else the largest.
    assert single("30.00", amounts(P1="20.00", P2="30.00", P3="50.00")).applications == pairs(("P2", "30.00"))
    result = single("40.00", amounts(P1="20.00", P2="45.00", P3="50.00"), amounts(A1="40.00"))
    assert result.applications == pairs(("P3", "40.00")) and result.captures == ()


def test_without_partial_one_authorization_covers_when_no_captured_balance_does():
    result = single("50.00", amounts(P1="20.00"), amounts(A1="30.00", A2="60.00", A3="50.00"))
    assert result.applications == () and result.captures == pairs(("A3", "50.00"))


def test_without_partial_several_sources_are_refused_naming_the_flag():
    # Together they cover (the partial plan would use P1 and A1), but none alone does.
    assert plan("50.00", amounts(P1="20.00"), amounts(A1="40.00")).total() == D("50.00")
    with pytest.raises(InsufficientFundsError, match="isAllowPartial is false.*most one can pay is 40.00"):
        single("50.00", amounts(P1="20.00"), amounts(A1="40.00"))
