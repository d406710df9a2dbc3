"""The resolver takes the refunds and captures it asked about least recently: ones it
cannot settle (a gateway it cannot reach, an outcome still unknown) do not crowd out a
refund left Pending by a run that just crashed. On a store of its own, so the count of
stuck records is this test's."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

from prefect import flow

from actions.ensure_funds import EnsureFundsInput, reserve_funds
from actions.ensure_refunds import EnsureRefundsInput, reserve_refunds
from actions.resolve_captures import resolve_captures
from actions.resolve_refunds import resolve_refunds
from blocks import SandboxGateway
from db.engine import session_scope
from db.models import PaymentAuthorizationCreate, PaymentStatus, Refund, RefundStatus
from db.models import Payment
from db.sobjects import create_payment_authorization
from tests.factories import make_order
from tests.ledger import assert_ledger_invariants

REACHABLE = "test-fairness-gateway"
UNREACHABLE = "test-fairness-no-such-block"


@flow(name="test-resolve-refunds-fairly")
def resolve_two_refunds():
    return resolve_refunds(older_than_seconds=0, limit=2)


@flow(name="test-resolve-captures-fairly")
def resolve_two_captures():
    return resolve_captures(older_than_seconds=0, limit=2)


def stuck_refund(store: str, gateway_block: str) -> str:
    """A refund reserved (Pending) by an operation that died before calling the gateway."""
    with session_scope(store) as s:
        order = make_order(s, payments=["40.00"], credit_memo="10.00", gateway_block=gateway_block)
    with session_scope(store) as s:
        (refund,) = reserve_refunds(session=s, order_summary_id=order.order_summary_id, operation_id=str(uuid.uuid4()),
                                    request=EnsureRefundsInput(credit_memo_id=order.credit_memo_id))
        return refund.id


def asked_at(store: str, refund_ids: list[str]) -> list:
    with session_scope(store) as s:
        return [s.get(Refund, r).resolve_attempted_at for r in refund_ids]


def test_refunds_that_stay_stuck_do_not_starve_a_new_one(own_store, prefect_api):
    SandboxGateway().save(REACHABLE, overwrite=True)
    u0, u1, u2 = (stuck_refund(own_store, UNREACHABLE) for _ in range(3))  # oldest first; they stay Pending

    first = resolve_two_refunds()
    assert first.examined == 2 and first.resolved == {}
    assert [at is not None for at in asked_at(own_store, [u0, u1, u2])] == [True, True, False]
    crashed = stuck_refund(own_store, REACHABLE)  # the newest of all

    second = resolve_two_refunds()  # the never-asked first: u2, then the crashed run's

    assert second.examined == 2 and second.resolved == {"Processed": 1}
    with session_scope(own_store) as s:
        assert s.get(Refund, crashed).status == RefundStatus.PROCESSED
        assert [s.get(Refund, r).status for r in (u0, u1, u2)] == [RefundStatus.PENDING] * 3
    before = asked_at(own_store, [u0, u1, u2])
    assert before[2] > max(before[:2])

    resolve_two_refunds()  # now the least recently asked: u0 and u1, not u2

    after = asked_at(own_store, [u0, u1, u2])
    assert after[0] > before[0] and after[1] > before[1] and after[2] == before[2]
    assert_ledger_invariants(own_store)


def stuck_capture(store: str, gateway_block: str) -> str:
    """A capture reserved (Draft) by an Ensure Funds operation that died before calling the gateway."""
    with session_scope(store) as s:
        order = make_order(s, payments=[[]], invoices=["10.00"], gateway_block=gateway_block)
        create_payment_authorization(session=s, obj_in=PaymentAuthorizationCreate(
            order_payment_summary_id=order.summaries[0], payment_gateway_id=order.gateway_id, amount=D("10.00")))
    with session_scope(store) as s:
        (capture,) = reserve_funds(session=s, order_summary_id=order.order_summary_id, operation_id=str(uuid.uuid4()),
                                      request=EnsureFundsInput(invoice_id=order.invoice_ids[0]))
        return capture.id


def test_captures_that_stay_stuck_do_not_starve_a_new_one(own_store, prefect_api):
    SandboxGateway().save(REACHABLE, overwrite=True)
    unreachable = [stuck_capture(own_store, UNREACHABLE) for _ in range(2)]
    assert resolve_two_captures().examined == 2
    crashed = stuck_capture(own_store, REACHABLE)

    second = resolve_two_captures()

    assert second.resolved == {"Processed": 1}
    with session_scope(own_store) as s:
        assert s.get(Payment, crashed).status == PaymentStatus.PROCESSED
        assert [s.get(Payment, p).status for p in unreachable] == [PaymentStatus.DRAFT] * 2
    assert_ledger_invariants(own_store)
