"""Reconciliation: how one record the gateway holds compares with the store's. Pure.

A gateway record (a refund, a capture or charge, an authorization) and the store's record
of the same money are each reduced to a ``Side``: amount, currency, and a ``Settlement``
(did money move). ``differences`` says what a finance team would flag:

* both sides, different currency or amount;
* both sides, different settlement: the gateway refunded and the store says Failed, or the
  reverse. A side still deciding (Pending, or Unknown after a timeout) is in flight, not a
  difference, until ``pending_limit`` has passed since it last changed;
* the gateway moved money the store does not know (a refund made in the gateway's
  dashboard); a record the gateway refused moved nothing and is no difference;
* the store says money moved and the gateway has no record of it;
* either side pending for longer than ``pending_limit``.

A second gateway record of one store record (money moved twice at the gateway) is told by
the caller, which sees every match (``Difference.DUPLICATE_AT_GATEWAY``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any


class RecordKind(StrEnum):
    """What a gateway record is."""

    PAYMENT = "Payment"  # money taken: a captured charge, or a capture of an authorization
    AUTHORIZATION = "Authorization"  # funds held, not taken (an uncaptured charge)
    REFUND = "Refund"


class Settlement(StrEnum):
    """Whether a record's money moved, on either side."""

    SUCCEEDED = "Succeeded"  # it moved (a processed refund or capture; funds held, for an authorization)
    PENDING = "Pending"  # not decided yet (the store's Pending and Unknown, the gateway's pending)
    FAILED = "Failed"  # nothing moved (declined, failed, canceled)
    REVERSED = "Reversed"  # it moved and was undone afterwards


class Difference(StrEnum):
    """The classes of difference, each reported as a finding."""

    AMOUNT = "AmountDiffers"
    CURRENCY = "CurrencyDiffers"
    STATUS = "StatusDiffers"
    MISSING_IN_STORE = "MissingInStore"
    MISSING_AT_GATEWAY = "MissingAtGateway"
    PENDING_TOO_LONG = "PendingTooLong"
    DUPLICATE_AT_GATEWAY = "DuplicateAtGateway"  # a second gateway record of one store record: money moved twice


MOVED = frozenset({Settlement.SUCCEEDED, Settlement.REVERSED})

# (gateway, store) settlements that say the same thing: a gateway that keeps no "reversed"
# status (Stripe) shows a refund that failed after it succeeded as failed.
_AGREE = frozenset({(Settlement.FAILED, Settlement.REVERSED)})


@dataclass(frozen=True, slots=True)
class GatewayEntry:
    """One record the gateway holds, as reconciliation reads it (``ReconcilableGateway``).

    ``parent_reference`` is the charge a refund refunds or the authorization a capture
    captured; ``aliases`` are other names of the same record (a Stripe charge's payment
    intent); ``idempotency_key`` is the key the record was sent with, where the gateway keeps
    one (the engine's, when the engine sent it).
    """

    kind: RecordKind
    reference: str
    amount: Decimal
    currency: str
    settlement: Settlement
    created: datetime
    status: str
    parent_reference: str | None = None
    parent_aliases: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    idempotency_key: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Side:
    """One side's record of the money: ``since`` is when it last changed (the gateway's
    creation time; the store's last modification), which the pending limit counts from."""

    amount: Decimal
    currency: str
    settlement: Settlement
    since: datetime


def differences(*, gateway: Side | None, store: Side | None, now: datetime, pending_limit: timedelta) -> list[Difference]:
    """What differs between the gateway's record and the store's (either may be missing).

    Example:
        >>> from datetime import UTC
        >>> day = datetime(2026, 12, 1, tzinfo=UTC)
        >>> at_gateway = Side(Decimal("40.00"), "USD", Settlement.SUCCEEDED, day)
        >>> differences(gateway=at_gateway, store=None, now=day, pending_limit=timedelta(hours=24))
        [<Difference.MISSING_IN_STORE: 'MissingInStore'>]
        >>> in_store = Side(Decimal("41.00"), "USD", Settlement.SUCCEEDED, day)
        >>> differences(gateway=at_gateway, store=in_store, now=day, pending_limit=timedelta(hours=24))
        [<Difference.AMOUNT: 'AmountDiffers'>]
    """

    def overdue(side: Side) -> bool:
        return now - side.since >= pending_limit

    if gateway is None and store is None:
        return []
    if gateway is None:
        if store.settlement in MOVED:
            return [Difference.MISSING_AT_GATEWAY]
        if store.settlement is Settlement.PENDING and overdue(store):
            return [Difference.PENDING_TOO_LONG]
        return []  # the store says nothing moved, and the gateway agrees
    if store is None:
        return [] if gateway.settlement is Settlement.FAILED else [Difference.MISSING_IN_STORE]

    found: list[Difference] = []
    if gateway.currency.upper() != store.currency.upper():
        found.append(Difference.CURRENCY)
    elif gateway.amount != store.amount:
        found.append(Difference.AMOUNT)
    if (gateway.settlement, store.settlement) in _AGREE:
        return found
    if gateway.settlement == store.settlement:
        if gateway.settlement is Settlement.PENDING and (overdue(store) or overdue(gateway)):
            found.append(Difference.PENDING_TOO_LONG)
    elif store.settlement is Settlement.PENDING:
        if overdue(store):  # the resolver should have settled it from the gateway's answer by now
            found.append(Difference.STATUS)
    elif gateway.settlement is Settlement.PENDING:
        if overdue(gateway):
            found.append(Difference.STATUS)
    else:
        found.append(Difference.STATUS)
    return found
