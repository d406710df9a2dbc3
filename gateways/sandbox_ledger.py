"""The sandbox gateway's own books: what it has refunded and captured, a row per request.

This is the *gateway's* side of the ledger (as Stripe's dashboard would be), kept in the
store's database so tests can compare both sides: every gateway effect has one row.
"""

from datetime import datetime
from decimal import Decimal

from sqlmodel import Field, SQLModel

from db.types import MoneyAmount, UTCDateTime, utcnow


class SandboxGatewayBooking(SQLModel):
    """One request the gateway acted on (booked or refused)."""

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(index=True, max_length=255)
    charge_reference: str = Field(index=True, max_length=255, description="The charge refunded or authorization captured.")
    amount: Decimal = Field(sa_type=MoneyAmount)
    currency: str = Field(max_length=3)
    outcome: str = Field(max_length=20)
    gateway_reference: str | None = Field(default=None, max_length=255)
    result_code: str | None = Field(default=None, max_length=255)
    message: str | None = Field(default=None, max_length=1000)
    created_date: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SandboxGatewayRefund(SandboxGatewayBooking, table=True):
    __tablename__ = "sandbox_gateway_refund"


class SandboxGatewayCapture(SandboxGatewayBooking, table=True):
    __tablename__ = "sandbox_gateway_capture"
