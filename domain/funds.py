"""Ensure Funds (Salesforce Order Management's Ensure Funds Async), pure and deterministic.

To pay an invoice's balance the order's money is used in this order, each step by the
same rule as seed 000's refunds (the amount that matches exactly, else the largest,
repeated; ties to the earliest):

* step 1 (``check_funds_cover``): the captured balance not yet applied to invoices plus
  what can still be captured must cover the invoice balance, else nothing happens;
* step 2 (``apply_captured_balance``): captured payments' unapplied balances are applied;
* step 3 (``capture_authorizations``): authorizations are captured for the rest.

With ``allow_partial=False`` (Salesforce's ``isAllowPartial`` false, 60.0: "the invoice
must be funded through a single payment") steps 2-3 take one source only
(``single_source``): one payment's captured balance, else one authorization, that covers
the whole invoice balance by itself; if none does, nothing happens (INSUFFICIENT_FUNDS).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from domain.allocation import AllocationStrategy, choose_exact_match_else_largest
from domain.errors import InvalidInputError
from domain.money import ZERO, normalize_currency, quantize, to_decimal


class InsufficientFundsError(InvalidInputError):
    """The order's captured balance and open authorizations cannot pay the invoice."""

    error_code = "INSUFFICIENT_FUNDS"


@dataclass(frozen=True, slots=True)
class FundsPlan:
    """Amounts to apply from captured payments and to capture from authorizations."""

    currency: str
    applications: tuple[tuple[str, Decimal], ...]  # (payment id, amount applied to the invoice)
    captures: tuple[tuple[str, Decimal], ...]  # (authorization id, amount to capture)

    def total(self) -> Decimal:
        return sum((a for _, a in self.applications), ZERO) + sum((c for _, c in self.captures), ZERO)


def check_funds_cover(balance: Decimal, captured: Mapping[str, Decimal], capturable: Mapping[str, Decimal]) -> None:
    """Step 1: unapplied captured balance + amount still capturable >= the invoice balance."""
    funds = sum(captured.values(), ZERO) + sum(capturable.values(), ZERO)
    if funds < balance:
        raise InsufficientFundsError(
            f"the order can cover {funds} (captured and not applied, plus still capturable) "
            f"of the invoice balance {balance}"
        )


def _take_exact_else_largest(amount: Decimal, sources: Mapping[str, Decimal]) -> tuple[list[tuple[str, Decimal]], Decimal]:
    left = dict(sources)
    taken: list[tuple[str, Decimal]] = []
    remaining = amount
    while remaining > 0 and any(v > 0 for v in left.values()):
        source = choose_exact_match_else_largest(remaining, left, AllocationStrategy.EXACT_MATCH_ELSE_LARGEST)
        portion = min(remaining, left[source])
        left[source] -= portion
        taken.append((source, portion))
        remaining -= portion
    return taken, remaining


def apply_captured_balance(balance: Decimal, captured: Mapping[str, Decimal]) -> tuple[list[tuple[str, Decimal]], Decimal]:
    """Step 2: apply captured payments' unapplied balances, exact match else largest,
    until the invoice is paid or none is left. Returns the applications and what remains."""
    return _take_exact_else_largest(balance, captured)


def capture_authorizations(balance: Decimal, capturable: Mapping[str, Decimal]) -> list[tuple[str, Decimal]]:
    """Step 3: capture from authorizations, exact match else largest, for what remains."""
    captures, remaining = _take_exact_else_largest(balance, capturable)
    assert remaining == 0, "step 1 guarantees the authorizations cover the rest"
    return captures


def single_source(
    balance: Decimal, captured: Mapping[str, Decimal], capturable: Mapping[str, Decimal]
) -> tuple[list[tuple[str, Decimal]], list[tuple[str, Decimal]]]:
    """Steps 2-3 with one source: the captured payment whose unapplied balance covers the
    whole invoice balance (exact match, else the largest; ties to the earliest), else the
    authorization that can capture all of it (the same rule). Returns (applications, captures)."""
    for sources, is_capture in ((captured, False), (capturable, True)):
        covering = {k: v for k, v in sources.items() if v >= balance}
        if covering:
            source = choose_exact_match_else_largest(balance, covering, AllocationStrategy.EXACT_MATCH_ELSE_LARGEST)
            return ([], [(source, balance)]) if is_capture else ([(source, balance)], [])
    largest = max((*captured.values(), *capturable.values()), default=ZERO)
    raise InsufficientFundsError(
        f"isAllowPartial is false, so one payment or authorization must pay the whole invoice balance {balance}, "
        f"and none can (the most one can pay is {largest}); send isAllowPartial true to pay it from several"
    )


def plan_funds(
    currency: str, invoice_balance: Decimal, captured: Mapping[str, Decimal], capturable: Mapping[str, Decimal],
    *, allow_partial: bool = True,
) -> FundsPlan:
    """Plan how to pay ``invoice_balance`` (steps 1-3); change nothing.

    Args:
        currency: the order's currency; every amount is checked against its minor unit.
        invoice_balance: what is still owed on the invoice (> 0).
        captured: per payment (oldest first), captured amount not yet refunded or applied.
        capturable: per authorization (oldest first), amount that can still be captured.
        allow_partial: False: one payment or authorization must pay it all (``single_source``).

    Example:
        >>> plan = plan_funds("USD", Decimal("50.00"), {"p1": Decimal("20.00")},
        ...                   {"a1": Decimal("30.00"), "a2": Decimal("40.00")})
        >>> plan.applications, plan.captures
        ((('p1', Decimal('20.00')),), (('a1', Decimal('30.00')),))
    """
    currency = normalize_currency(currency)
    balance = quantize(to_decimal(invoice_balance), currency)
    if balance <= 0:
        raise InvalidInputError(f"the invoice balance must be positive to ensure funds, it is {balance}")
    captured = {k: quantize(to_decimal(v), currency) for k, v in captured.items()}
    capturable = {k: quantize(to_decimal(v), currency) for k, v in capturable.items()}
    if any(v < 0 for v in (*captured.values(), *capturable.values())):
        raise InvalidInputError("captured and capturable amounts cannot be negative")
    check_funds_cover(balance, captured, capturable)
    if not allow_partial:
        applications, captures = single_source(balance, captured, capturable)
        return FundsPlan(currency, tuple(applications), tuple(captures))
    applications, remaining = apply_captured_balance(balance, captured)
    captures = capture_authorizations(remaining, capturable) if remaining > 0 else []
    return FundsPlan(currency, tuple(applications), tuple(captures))
