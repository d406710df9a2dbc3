"""Whether one payment (a charge) can be refunded now, and by how much (seeds 002, 003). Pure.

A payment can be refunded while it is captured (Processed) and the total refunded,
pending refunds included, stays within its amount (several partial refunds are fine).
Some gateways take one refund at a time per payment; a direct debit may be refunded only
with an explicit override, since the payer's bank can refund it too (seed 002).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from domain.money import ZERO, minor_units


class NonRefundableReason(StrEnum):
    NOT_PAID = "NOT_PAID"  # not captured (draft, cancelled or an authorization only)
    ALREADY_REFUNDED = "ALREADY_REFUNDED"  # refunded in full, pending refunds included
    PENDING_REFUND = "PENDING_REFUND"  # the gateway takes one refund at a time and one is under way
    PAYMENT_METHOD_NOT_SUPPORTED = "PAYMENT_METHOD_NOT_SUPPORTED"  # the gateway cannot refund this method
    DISABLED_BY_PROVIDER = "DISABLED_BY_PROVIDER"  # the payment gateway is not active
    ACCESS_DENIED = "ACCESS_DENIED"  # the caller lacks the refund permission
    DIRECT_DEBIT_OVERRIDE_REQUIRED = "DIRECT_DEBIT_OVERRIDE_REQUIRED"  # refundable only with an override reason
    NOT_IN_ORDER_PAYMENT_SUMMARY = "NOT_IN_ORDER_PAYMENT_SUMMARY"  # linked to no summary yet: nothing to refund from


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    """What refundability depends on, read from the store under the order's lock."""

    amount: Decimal
    currency: str
    captured: bool
    refunded: Decimal  # succeeded refunds
    pending_refund: Decimal  # refunds sent or about to be, not yet answered
    direct_debit: bool
    method_supported: bool = True
    gateway_active: bool = True
    one_refund_at_a_time: bool = False
    caller_may_refund: bool = True
    in_summary: bool = True  # linked to an order payment summary (an unlinked payment rolls up nowhere)


@dataclass(frozen=True, slots=True)
class Refundability:
    refundable: bool
    min_refund_amount: Decimal
    max_refund_amount: Decimal
    previously_refunded_amount: Decimal
    reason: NonRefundableReason | None = None
    needs_override: bool = False  # refundable, but only with a direct-debit override reason


def refundability(facts: PaymentFacts, *, override: bool = False) -> Refundability:
    """Whether ``facts``' payment can be refunded now, between which amounts, or why not.

    Example:
        >>> r = refundability(PaymentFacts(amount=Decimal("50.00"), currency="USD", captured=True,
        ...                                refunded=Decimal("20.00"), pending_refund=Decimal("10.00"), direct_debit=False))
        >>> (r.refundable, r.min_refund_amount, r.max_refund_amount, r.previously_refunded_amount)
        (True, Decimal('0.01'), Decimal('20.00'), Decimal('20.00'))
    """
    smallest = Decimal(1).scaleb(-minor_units(facts.currency))
    room = max(ZERO, facts.amount - facts.refunded - facts.pending_refund)

    def refused(reason: NonRefundableReason) -> Refundability:
        return Refundability(False, ZERO, ZERO, facts.refunded, reason)

    for failed, reason in (
        (not facts.caller_may_refund, NonRefundableReason.ACCESS_DENIED),
        (not facts.in_summary, NonRefundableReason.NOT_IN_ORDER_PAYMENT_SUMMARY),
        (not facts.captured, NonRefundableReason.NOT_PAID),
        (not facts.gateway_active, NonRefundableReason.DISABLED_BY_PROVIDER),
        (not facts.method_supported, NonRefundableReason.PAYMENT_METHOD_NOT_SUPPORTED),
        (facts.one_refund_at_a_time and facts.pending_refund > 0, NonRefundableReason.PENDING_REFUND),
        (room < smallest and facts.pending_refund > 0, NonRefundableReason.PENDING_REFUND),
        (room < smallest, NonRefundableReason.ALREADY_REFUNDED),
    ):
        if failed:
            return refused(reason)
    if facts.direct_debit and not override:
        return Refundability(False, smallest, room, facts.refunded, NonRefundableReason.DIRECT_DEBIT_OVERRIDE_REQUIRED,
                             needs_override=True)
    return Refundability(True, smallest, room, facts.refunded, None, needs_override=facts.direct_debit)
