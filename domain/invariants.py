"""Ledger invariants (DESIGN.md §8), as pure checks over plain numbers."""

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Violation:
    record_id: str
    rule: str
    detail: str


def check_payment_summary(
    record_id: str, *, captured: Decimal, pending_capture: Decimal, refunded: Decimal, pending_refund: Decimal
) -> list[Violation]:
    """Refunded + PendingRefund <= Captured + PendingCapture, and no amount below zero."""
    found = []
    if refunded + pending_refund > captured + pending_capture:
        found.append(Violation(record_id, "refunded-within-captured",
                               f"refunded {refunded} + pending {pending_refund} > captured {captured} + pending {pending_capture}"))
    for name, value in (("captured", captured), ("pending_capture", pending_capture),
                        ("refunded", refunded), ("pending_refund", pending_refund)):
        if value < 0:
            found.append(Violation(record_id, "non-negative", f"{name} is {value}"))
    return found


def check_balance(record_id: str, *, balance: Decimal, total: Decimal, what: str = "balance") -> list[Violation]:
    """A credit memo's or invoice's Balance (or its tax) stays within 0..its total with tax."""
    if balance < 0 or balance > total:
        return [Violation(record_id, f"{what}-within-total", f"{what} {balance} outside 0..{total}")]
    return []


def check_sums(record_id: str, *, parent: Decimal, children: Decimal, what: str) -> list[Violation]:
    """A rolled-up amount equals the sum of its parts."""
    if parent != children:
        return [Violation(record_id, f"{what}-rollup", f"{what} {parent} != sum of parts {children}")]
    return []
