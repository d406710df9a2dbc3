"""Money: an immutable Decimal amount with its currency, quantized to the minor unit.

Amounts are never binary floats. Arithmetic across currencies raises
:class:`~domain.errors.CurrencyMismatchError` instead of converting.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

import moneyed

from domain.errors import CurrencyMismatchError, InvalidInputError

ZERO = Decimal("0")
MAX_AMOUNT = Decimal(10) ** 15
"""Amounts stay below 10^15 of a currency: the store keeps 19 digits, 4 after the point."""


def minor_units(currency: str) -> int:
    """Number of decimal places of ``currency``'s minor unit (ISO 4217, from py-moneyed)."""
    sub_unit = moneyed.get_currency(normalize_currency(currency)).sub_unit
    return len(str(sub_unit)) - 1  # 1 -> 0 (JPY), 100 -> 2 (USD), 1000 -> 3 (KWD)


def normalize_currency(currency: str) -> str:
    """Upper-case an ISO 4217 currency code, refusing anything that is not one."""
    if not isinstance(currency, str) or len(currency) != 3 or not (currency.isascii() and currency.isalpha()):
        raise InvalidInputError(f"'{currency}' is not a three-letter ISO 4217 currency code")
    code = currency.upper()
    try:
        moneyed.get_currency(code)
    except moneyed.CurrencyDoesNotExist:
        raise InvalidInputError(f"'{currency}' is not an ISO 4217 currency code") from None
    return code


def to_decimal(value: object) -> Decimal:
    """Parse an amount exactly. Floats are refused: they are not exact."""
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidInputError(f"amount {value!r} must be given as a decimal string or integer")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise InvalidInputError(f"'{value}' is not a valid amount") from exc
    if not amount.is_finite():
        raise InvalidInputError(f"'{value}' is not a finite amount")
    return amount


def quantize(amount: Decimal, currency: str, *, strict: bool = True) -> Decimal:
    """Quantize ``amount`` to ``currency``'s minor unit.

    With ``strict`` (the default) an amount finer than the minor unit is refused
    rather than silently rounded: 10.005 USD is a mistake, not 10.00 or 10.01.
    """
    exponent = Decimal(1).scaleb(-minor_units(currency))
    if not amount.is_finite():
        raise InvalidInputError(f"'{amount}' is not a finite amount")
    if abs(amount) >= MAX_AMOUNT:
        raise InvalidInputError(f"amount {amount} is too large (the limit is below {MAX_AMOUNT:,})")
    try:
        quantized = amount.quantize(exponent, rounding=ROUND_HALF_EVEN)
    except InvalidOperation as exc:
        raise InvalidInputError(f"amount {amount} is too large") from exc
    if strict and quantized != amount:
        raise InvalidInputError(
            f"amount {amount} has more decimal places than {normalize_currency(currency)} allows"
        )
    return quantized


@dataclass(frozen=True, slots=True)
class Money:
    """An amount of one currency, always quantized to its minor unit.

    Example:
        >>> Money.of("10.50", "usd") + Money.of("0.25", "USD")
        Money(amount=Decimal('10.75'), currency='USD')
    """

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        currency = normalize_currency(self.currency)
        object.__setattr__(self, "currency", currency)
        object.__setattr__(self, "amount", quantize(to_decimal(self.amount), currency))

    @classmethod
    def of(cls, amount: object, currency: str) -> Money:
        return cls(to_decimal(amount), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(ZERO, currency)

    def _same_currency(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount >= other.amount

    def __bool__(self) -> bool:
        return self.amount != 0

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
