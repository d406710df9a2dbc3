"""Money of order changes (cancels, returns, fees), pure.

A change of ``quantity`` units of an order item credits (or charges) its share of the
line's amount and tax. Shares are rounded *cumulatively*: the units changed so far and
the units changed now are priced together and the earlier part subtracted, so however
an item is cancelled or returned in pieces, the pieces add up to the line to the cent.
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


def check_quantity(quantity: Decimal, available: Decimal, what: str) -> None:
    """A change may take at most what is available, and must take something."""
    if quantity <= ZERO:
        raise InvalidInputError(f"quantity to {what} must be positive, got {quantity}")
    if quantity > available:
        raise InvalidInputError(f"quantity to {what} ({quantity}) exceeds what is available to {what} ({available})")
