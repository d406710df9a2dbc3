"""The gateway boundary: plain data in, plain data out. Adapters depend on this module.

An adapter never raises for a gateway's answer: declines, errors and timeouts are
outcomes. A timeout means *unknown*: the gateway may have moved the money, so the caller
keeps the amount reserved and asks the gateway later (``lookup_refund``), never retries
blind and never marks it failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from domain.reconciliation import GatewayEntry, RecordKind


class GatewayOutcome(StrEnum):
    APPROVED = "Approved"
    DECLINED = "Declined"
    ERROR = "Error"  # the gateway answered that it failed: nothing moved
    TIMEOUT = "Timeout"  # no answer: the outcome is unknown


@dataclass(frozen=True, slots=True)
class RefundCommand:
    """Refund ``amount`` of the charge ``charge_reference``; ``idempotency_key`` is sent
    to the gateway, which must apply one refund per key whatever is retried."""

    idempotency_key: str
    charge_reference: str
    amount: Decimal
    currency: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CaptureCommand:
    """Capture ``amount`` of the authorization ``authorization_reference``; one capture
    per ``idempotency_key`` whatever is retried."""

    idempotency_key: str
    authorization_reference: str
    amount: Decimal
    currency: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GatewayResult:
    """What the gateway answered, with the request and response kept for the log."""

    outcome: GatewayOutcome
    gateway_reference: str | None = None
    result_code: str | None = None
    message: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)


class GatewayRecord(Protocol):
    """What the registry reads of a PaymentGateway record to build its adapter (the store's
    PaymentGateway table has these fields)."""

    @property
    def id(self) -> str: ...

    @property
    def gateway_provider(self) -> str:
        """A ``domain.gateway_provider.GatewayProvider`` value."""
        ...

    @property
    def merchant_credential_name(self) -> str | None:
        """The name of the block document holding the gateway's configuration."""
        ...


class PaymentGatewayAdapter(Protocol):
    """What every adapter (sandbox, Stripe) offers."""

    def refund(self, command: RefundCommand) -> GatewayResult: ...

    def lookup_refund(self, command: RefundCommand) -> GatewayResult | None:
        """The gateway's record of the refund sent with this command's key, or None if it has none."""
        ...

    def capture(self, command: CaptureCommand) -> GatewayResult: ...

    def lookup_capture(self, command: CaptureCommand) -> GatewayResult | None:
        """The gateway's record of the capture sent with this command's key, or None if it has none."""
        ...


class ReconcilableGateway(Protocol):
    """An adapter whose records reconciliation can read (sandbox, Stripe).

    ``lists_direct_charges``: whether the gateway holds the charges the engine did not make
    (Stripe: every charge of the account; the sandbox books only what the engine sent it,
    refunds and captures), so whether a store payment missing there is a difference.
    """

    lists_direct_charges: bool

    def list_entries(self, *, since: datetime, until: datetime) -> Iterator[GatewayEntry]:
        """Every refund and charge or capture created in ``[since, until)``, streamed page by page."""
        ...

    def find_entry(self, kind: RecordKind, *, reference: str | None, idempotency_key: str | None,
                   parent_reference: str | None) -> GatewayEntry | None:
        """The one record of ``kind`` with this reference or engine key (a refund is looked
        for among ``parent_reference``'s), or None if the gateway has none."""
        ...
