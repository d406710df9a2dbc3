"""The sandbox gateway's own books: what it has refunded and captured, a row per request.

This is the *gateway's* side of the ledger (as Stripe's dashboard would be), not a table
of the store: it has its own ``metadata`` and column types, and the sandbox creates its
tables where they are missing (``gateways.sandbox_engine``). It lives in the store's
database by default, so tests can compare both sides: every gateway effect has one row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import DateTime, Index, Integer, MetaData, Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


class Amount(TypeDecorator):
    """An exact Decimal: NUMERIC(19, 4), or its decimal text on SQLite (which has no decimal type)."""

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
            raise TypeError(f"amounts must be Decimal, got {type(value).__name__}")
        if value != value.quantize(Decimal("0.0001")):
            raise ValueError(f"{value} has more than the 4 decimal places the books keep")
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        amount = value if isinstance(value, Decimal) else Decimal(value)
        exponent = min(amount.normalize().as_tuple().exponent, -2)  # 13.1300 -> 13.13, keeping two places at least
        return amount.quantize(Decimal(1).scaleb(exponent))


class UTCTimestamp(TypeDecorator):
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


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SandboxBooks(DeclarativeBase):
    metadata = metadata


class SandboxGatewayBooking(SandboxBooks):
    """One request the gateway acted on (booked or refused)."""

    __abstract__ = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), index=True)
    charge_reference: Mapped[str] = mapped_column(
        String(255), index=True, doc="The charge refunded or authorization captured.")
    amount: Mapped[Decimal] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    outcome: Mapped[str] = mapped_column(String(20))
    gateway_reference: Mapped[str | None] = mapped_column(String(255))
    result_code: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str | None] = mapped_column(String(1000))
    created_date: Mapped[datetime] = mapped_column(UTCTimestamp, default=_utcnow)


class SandboxGatewayRefund(SandboxGatewayBooking):
    __tablename__ = "sandbox_gateway_refund"


class SandboxGatewayCapture(SandboxGatewayBooking):
    __tablename__ = "sandbox_gateway_capture"


for _books in (SandboxGatewayRefund, SandboxGatewayCapture):
    # Reconciliation pages through the books by creation time and looks records up by reference.
    Index(f"ix_{_books.__tablename__}_created", _books.created_date, _books.id)
    Index(f"ix_{_books.__tablename__}_reference", _books.gateway_reference)
