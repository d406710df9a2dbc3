"""Money of order changes (cancels, returns, fees), pure.

A change of ``quantity`` units of an order item credits (or charges) its share of the
line's amount and tax. Shares are rounded *cumulatively*: the units changed so far and
the units changed now are priced together and the earlier part subtracted, so however
an item is cancelled or returned in pieces, the pieces add up to the line to the cent.

The units of a line are priced as positions 0..ordered. Cancelled units take positions
from the start, fulfilled (invoiced) units from the end, and returned units the same
positions from the end as the fulfilled units they give back: cancels and invoices
together make exactly the line, and returning every fulfilled unit credits exactly what
was invoiced for them.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from domain.errors import InvalidInputError
from domain.money import ZERO, minor_units


def _round(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_EVEN)


def share_of_line(total: Decimal, ordered: Decimal, already_changed: Decimal, quantity: Decimal, currency: str) -> Decimal:
    """The part of ``total`` (a line's amount or tax for ``ordered`` units) that
    ``quantity`` more units carry, after ``already_changed`` units were changed before.

    Example:
        >>> [share_of_line(Decimal("10.00"), Decimal(3), Decimal(n), Decimal(1), "USD") for n in range(3)]
        [Decimal('3.33'), Decimal('3.34'), Decimal('3.33')]
    """
    if ordered <= 0:
        raise InvalidInputError("the order item has no ordered quantity to change")
    if quantity <= 0:
        raise InvalidInputError(f"quantity must be positive, got {quantity}")
    if already_changed < 0 or already_changed + quantity > ordered:
        raise InvalidInputError(f"cannot change {quantity} more of {ordered} units ({already_changed} changed already)")
    before = _round(total * already_changed / ordered, currency)
    after = _round(total * (already_changed + quantity) / ordered, currency)
    return after - before


def share_from_end(total: Decimal, ordered: Decimal, already_changed: Decimal, quantity: Decimal, currency: str) -> Decimal:
    """Like :func:`share_of_line`, counting positions from the line's end.

    Example:
        >>> share_from_end(Decimal("10.00"), Decimal(3), Decimal(0), Decimal(2), "USD")
        Decimal('6.67')
    """
    if already_changed < 0 or quantity <= 0 or already_changed + quantity > ordered:
        raise InvalidInputError(f"cannot change {quantity} more of {ordered} units ({already_changed} changed already)")
    return share_of_line(total, ordered, ordered - already_changed - quantity, quantity, currency)


def check_quantity(quantity: Decimal, available: Decimal, what: str) -> None:
    """A change may take at most what is available, and must take something."""
    if quantity <= ZERO:
        raise InvalidInputError(f"quantity to {what} must be positive, got {quantity}")
    if quantity > available:
        raise InvalidInputError(f"quantity to {what} ({quantity}) exceeds what is available to {what} ({available})")


def excess_funds(*, held: Decimal, amount_due: Decimal, open_credit: Decimal) -> Decimal:
    """Money an order holds beyond what it still charges: what a cancel after capture (or a
    return) frees for Ensure Refunds' excessFundsAmount. Credit already on credit memos is
    left out, since refunding the memo returns it: counting it twice would refund it twice.

    Example:
        >>> excess_funds(held=Decimal("32.97"), amount_due=Decimal("21.98"), open_credit=Decimal(0))
        Decimal('10.99')
    """
    return max(ZERO, held - amount_due - open_credit)
