"""Column types that keep money exact and timestamps timezone-aware on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import DateTime, Numeric, String
from sqlalchemy.types import TypeDecorator


class MoneyAmount(TypeDecorator):
    """A Decimal amount: NUMERIC(19, 4) on PostgreSQL, exact decimal text on SQLite.

    SQLite has no decimal type and would store a binary float; text keeps every digit.
    Amounts are quantized to their currency's minor unit before they get here.
    """

    impl = Numeric(19, 4)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(Numeric(19, 4, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"money must be Decimal, got {type(value).__name__}")
        if value != value.quantize(Decimal("0.0001")):
            # PostgreSQL would round it silently; a value the store cannot keep exactly is a bug upstream.
            raise ValueError(f"{value} has more than the 4 decimal places the store keeps")
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        amount = value if isinstance(value, Decimal) else Decimal(value)
        # NUMERIC(19, 4) answers 13.1300: drop the storage scale's trailing zeros, keeping
        # two places at least (13.13, 1.234, 1500.00); public models quantize per currency.
        exponent = min(amount.normalize().as_tuple().exponent, -2)
        return amount.quantize(Decimal(1).scaleb(exponent))


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Quantity(MoneyAmount):
    """An exact item count (Salesforce quantities may be fractional): 3, 1.5, never 3.00."""

    cache_ok = True

    def process_result_value(self, value, dialect):
        amount = super().process_result_value(value, dialect)
        if amount is None:
            return None
        amount = amount.normalize()
        return amount.quantize(Decimal(1)) if amount.as_tuple().exponent > 0 else amount
