"""The send guard: a refusing guard stops a refund or capture before any request leaves,
as an infrastructure fault (the run is resumed, not failed); no guard, or one that
allows, sends as before."""

from __future__ import annotations

import contextvars
from decimal import Decimal

import pytest

from gateways.contract import GatewayOutcome, GatewayResult, RefundCommand
from gateways.send_guard import SendingSuspended, ensure_may_send, guarded_by, set_guard
from runtime.executor.faults import is_infrastructure_fault


class CountingGateway:
    def __init__(self):
        self.sent: list[str] = []

    def refund(self, command: RefundCommand) -> GatewayResult:
        self.sent.append(command.idempotency_key)
        return GatewayResult(outcome=GatewayOutcome.APPROVED, gateway_reference="re_1")

    def lookup_refund(self, command: RefundCommand) -> GatewayResult | None:
        return None


def test_no_guard_allows():
    ensure_may_send()


def test_a_refusing_guard_raises_with_its_reason_and_it_is_an_infrastructure_fault():
    with guarded_by(lambda: "lost the store 9.0 s ago"):
        with pytest.raises(SendingSuspended, match="lost the store 9.0 s ago") as raised:
            ensure_may_send()
    assert is_infrastructure_fault(raised.value)
    ensure_may_send()  # the guard ended with its block


def test_a_guard_reaches_copied_contexts_but_not_others():
    context = contextvars.copy_context()
    context.run(set_guard, lambda: "no")
    with pytest.raises(SendingSuspended):
        context.copy().run(ensure_may_send)  # e.g. a batch's worker threads
    ensure_may_send()  # this context never had it


def test_submit_refund_sends_nothing_under_a_refusing_guard():
    from actions import refunds
    from db.models import Refund, RefundStatus

    refund = Refund(id="0a4x", amount=Decimal("5.00"), currency_iso_code="USD", status=RefundStatus.PENDING,
                    idempotency_key="key-1", order_payment_summary_id="0bM1")
    gateway = CountingGateway()
    with guarded_by(lambda: "lease lost"):
        with pytest.raises(SendingSuspended):
            refunds.submit_refund(refund, gateway, "ch_1", look_up_first=True)
    assert gateway.sent == []
    assert refunds.submit_refund(refund, gateway, "ch_1").outcome == GatewayOutcome.APPROVED
    assert gateway.sent == ["key-1"]
