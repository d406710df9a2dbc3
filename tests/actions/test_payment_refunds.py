"""Payment-level refunds (seeds 002, 003) on each backend: refundability, the guards,
record-then-send, REVERSED, and Query Refunds paging under concurrent inserts."""

from __future__ import annotations

import threading
from decimal import Decimal as D

import pytest
from sqlmodel import select

from actions.payment_refunds import (
    RefundPaymentInput, payment_refundability, reserve_payment_refund, reverse_refund, send_reserved_refund,
)
from actions.query_refunds import RefundFilter, RefundQuery, RefundState, SortOrder, query_refunds
from blocks import SandboxGateway
from db.engine import session_scope
from db.models import (
    OrderPaymentSummary, Payment, PaymentCreate, PaymentGateway, PaymentMethodType, PaymentStatus, ProcessException, Refund,
)
from db.sobjects import create_payment
from domain.errors import (
    CurrencyMismatchError, NotFoundError, NotRefundableError, PreviouslyRefundedAmountMismatchError,
    RefundAmountOutOfRangeError,
)
from gateways.sandbox import SandboxGatewayAdapter
from tests.factories import make_order
from tests.ledger import assert_ledger_invariants, snapshot

GATEWAY = "test-payment-refunds-gateway"
DECLINE, TIMEOUT = "13.13", "66.60"


@pytest.fixture(scope="module", autouse=True)
def scripted_gateway(prefect_api):
    SandboxGateway(outcomes_by_amount={DECLINE: "decline", TIMEOUT: "timeout"}).save(GATEWAY, overwrite=True)


def _charge(store, amount="50.00", *, method=PaymentMethodType.CARD, status=PaymentStatus.PROCESSED, **gateway_fields):
    """An order with one payment (the charge); returns (order fixture, payment id)."""
    with session_scope(store) as s:
        order = make_order(s, payments=[[]], gateway_block=GATEWAY)
        for field, value in gateway_fields.items():
            setattr(s.get(PaymentGateway, order.gateway_id), field, value)
        payment = create_payment(session=s, obj_in=PaymentCreate(
            order_payment_summary_id=order.summaries[0], payment_gateway_id=order.gateway_id, amount=D(amount),
            payment_method_type=method, status=status))
        s.flush()
        return order, payment.id


def _reserve(store, charge_id, **fields):
    with session_scope(store) as s:
        return reserve_payment_refund(session=s, request=RefundPaymentInput(charge_id=charge_id, **fields)).id


def _refund(store, charge_id, **fields):
    """Record and send, as the refund-payment flow does."""
    return send_reserved_refund(_reserve(store, charge_id, **fields), resuming=False)


def _payment(store, charge_id) -> Payment:
    with session_scope(store) as s:
        return s.get(Payment, charge_id)


def _refundability(store, charge_id, **kwargs):
    with session_scope(store) as s:
        return payment_refundability(session=s, charge_id=charge_id, **kwargs)


def test_a_full_refund_by_default_then_nothing_is_refundable(store):
    _, charge = _charge(store, "50.00")
    refund = _refund(store, charge, reason="damaged", note="box crushed")
    assert (refund.amount, refund.status, refund.reason, refund.note) == (D("50.00"), "Processed", "damaged", "box crushed")
    payment = _payment(store, charge)
    assert (payment.refunded_amount, payment.pending_refund_amount) == (D("50.00"), D(0))
    after = _refundability(store, charge)
    assert (after.refundable, after.non_refundable_reason, after.previously_refunded_amount) == (
        False, "ALREADY_REFUNDED", D("50.00"))
    before = snapshot(store)
    with pytest.raises(NotRefundableError) as refused:
        _reserve(store, charge)
    assert refused.value.error_code == "ALREADY_REFUNDED"
    assert snapshot(store) == before
    assert_ledger_invariants(store)


def test_partial_refunds_up_to_the_captured_amount_pending_ones_counted(store):
    _, charge = _charge(store, "50.00")
    _refund(store, charge, amount=D("20.00"))
    pending = _reserve(store, charge, amount=D("10.00"))  # recorded, not yet sent
    answer = _refundability(store, charge)
    assert (answer.refundable, answer.min_refund_amount, answer.max_refund_amount, answer.previously_refunded_amount) == (
        True, D("0.01"), D("20.00"), D("20.00"))
    before = snapshot(store)
    with pytest.raises(RefundAmountOutOfRangeError, match="20.00"):
        _reserve(store, charge, amount=D("20.01"))
    with pytest.raises(Exception, match="decimal|minor unit|cent|places"):
        _reserve(store, charge, amount=D("1.005"))
    with pytest.raises(CurrencyMismatchError):
        _reserve(store, charge, amount=D("1.00"), currency_code="EUR")
    with pytest.raises(NotFoundError):
        _reserve(store, "0a3AAAAAAAAAAAAAAA", amount=D("1.00"))
    assert snapshot(store) == before
    send_reserved_refund(pending, resuming=False)
    _refund(store, charge, amount=D("20.00"))
    assert _payment(store, charge).refunded_amount == D("50.00")
    assert_ledger_invariants(store)


def test_previously_refunded_amount_must_match_the_succeeded_refunds(store):
    _, charge = _charge(store, "50.00")
    _refund(store, charge, amount=D("10.00"), previously_refunded_amount=D("0"))
    before = snapshot(store)
    with pytest.raises(PreviouslyRefundedAmountMismatchError) as stale:
        _reserve(store, charge, amount=D("10.00"), previously_refunded_amount=D("0"))  # the merchant saw 0 before
    assert stale.value.error_code == "PREVIOUSLY_REFUNDED_AMOUNT_MISMATCH" and stale.value.http_status == 409
    assert snapshot(store) == before
    _refund(store, charge, amount=D("10.00"), previously_refunded_amount=D("10.00"))
    assert _payment(store, charge).refunded_amount == D("20.00")
    assert_ledger_invariants(store)


def test_a_retry_while_the_first_refund_is_in_flight_is_refused(store):
    """The client sent 15.00 with previouslyRefundedAmount 0, lost the answer and sends it
    again while the first is still PENDING: refused, not refunded twice."""
    _, charge = _charge(store, "40.00")
    first = _reserve(store, charge, amount=D("15.00"), previously_refunded_amount=D("0"))
    before = snapshot(store)
    with pytest.raises(PreviouslyRefundedAmountMismatchError, match="in progress"):
        _reserve(store, charge, amount=D("15.00"), previously_refunded_amount=D("0"))
    assert snapshot(store) == before
    send_reserved_refund(first, resuming=False)
    assert _payment(store, charge).refunded_amount == D("15.00")
    assert_ledger_invariants(store)


def test_reversing_a_credit_memo_refund_puts_the_credit_back(store):
    from prefect import flow

    from actions.ensure_refunds import EnsureRefundsInput, ensure_refunds
    from db.models import CreditMemo

    with session_scope(store) as s:
        order = make_order(s, payments=["60.00"], credit_memo="30.00", gateway_block=GATEWAY)

    @flow
    def refund_memo():
        return ensure_refunds(order.order_summary_id, EnsureRefundsInput(credit_memo_id=order.credit_memo_id),
                              f"reversal-test-{order.order_summary_id}")

    (refund,) = refund_memo().refunds
    with session_scope(store) as s:
        key = s.get(Refund, refund.refund_id).idempotency_key
    SandboxGatewayAdapter().reverse_refund(key)
    with session_scope(store) as s:
        reverse_refund(session=s, refund_id=refund.refund_id, gateway_message="returned by the issuer")
    with session_scope(store) as s:
        assert s.get(CreditMemo, order.credit_memo_id).balance == D("30.00")  # owed to the customer again
        assert s.get(OrderPaymentSummary, order.summaries[0]).refunded_amount == 0
    assert_ledger_invariants(store)


def test_two_concurrent_partial_refunds_beyond_the_cap_one_is_refused(store):
    _, charge = _charge(store, "50.00")
    outcomes, barrier = [], threading.Barrier(2)

    def attempt():
        barrier.wait()
        try:
            outcomes.append(_reserve(store, charge, amount=D("30.00")))
        except RefundAmountOutOfRangeError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(o).__name__ for o in outcomes) == ["RefundAmountOutOfRangeError", "str"]
    assert _payment(store, charge).pending_refund_amount == D("30.00")
    assert_ledger_invariants(store)


def test_pending_then_succeeded_and_a_decline_releases_the_amount(store):
    _, charge = _charge(store, "50.00")
    refund_id = _reserve(store, charge, amount=D("5.00"))
    with session_scope(store) as s:
        recorded = s.get(Refund, refund_id)
        assert (recorded.status, recorded.revision) == ("Pending", 1)
    assert _payment(store, charge).pending_refund_amount == D("5.00")
    sent = send_reserved_refund(refund_id, resuming=False)
    assert (sent.status, sent.revision) == ("Processed", 2)
    declined = _refund(store, charge, amount=D(DECLINE))
    assert declined.status == "Failed"
    released = _refundability(store, charge)  # the declined 13.13 is refundable again
    assert released.max_refund_amount == D("45.00")
    assert _refund(store, charge, amount=D("26.60")).status == "Processed"
    payment = _payment(store, charge)
    assert (payment.refunded_amount, payment.pending_refund_amount) == (D("31.60"), D(0))
    assert_ledger_invariants(store)


def test_a_timeout_stays_pending_with_the_amount_held(store):
    _, charge = _charge(store, "100.00")
    refund = _refund(store, charge, amount=D(TIMEOUT))
    assert refund.status == "Unknown"
    assert _payment(store, charge).pending_refund_amount == D(TIMEOUT)
    assert _refundability(store, charge).max_refund_amount == D("33.40")
    assert_ledger_invariants(store)


def test_succeeded_then_reversed_unwinds_the_amounts_and_tells_a_person(store):
    order, charge = _charge(store, "50.00")
    refund = _refund(store, charge, amount=D("20.00"))
    assert SandboxGatewayAdapter().reverse_refund(refund.idempotency_key, "issuer returned the funds")
    assert_ledger_invariants(store)  # the gateway knows before we do: still consistent
    with session_scope(store) as s:
        reversed_ = reverse_refund(session=s, refund_id=refund.id, gateway_message="issuer returned the funds")
        assert (reversed_.status, reversed_.revision) == ("Reversed", 3)
    payment = _payment(store, charge)
    assert payment.refunded_amount == D(0)
    with session_scope(store) as s:
        assert s.get(OrderPaymentSummary, order.summaries[0]).refunded_amount == D(0)
        flagged = list(s.exec(select(ProcessException).where(ProcessException.attached_to_id == refund.id)))
    assert len(flagged) == 1 and "reversed" in flagged[0].message
    assert _refundability(store, charge).max_refund_amount == D("50.00")
    with session_scope(store) as s:  # reversing twice changes nothing more
        assert reverse_refund(session=s, refund_id=refund.id).status == "Reversed"
    assert _payment(store, charge).refunded_amount == D(0)
    assert_ledger_invariants(store)


def test_direct_debit_is_refused_unless_overridden_with_a_reason(store):
    _, charge = _charge(store, "40.00", method=PaymentMethodType.DIRECT_DEBIT)
    answer = _refundability(store, charge)
    assert (answer.refundable, answer.non_refundable_reason, answer.requires_direct_debit_override) == (
        False, "DIRECT_DEBIT_OVERRIDE_REQUIRED", True)
    before = snapshot(store)
    with pytest.raises(NotRefundableError) as refused:
        _reserve(store, charge, amount=D("10.00"))
    assert refused.value.error_code == "DIRECT_DEBIT_OVERRIDE_REQUIRED"
    assert snapshot(store) == before
    refund = _refund(store, charge, amount=D("10.00"), direct_debit_override_reason="customer's bank declined to refund")
    assert (refund.status, refund.direct_debit_override_reason) == ("Processed", "customer's bank declined to refund")
    assert_ledger_invariants(store)


@pytest.mark.parametrize("case, reason", [
    ("not-captured", "NOT_PAID"), ("one-at-a-time", "PENDING_REFUND"), ("method", "PAYMENT_METHOD_NOT_SUPPORTED"),
    ("inactive-gateway", "DISABLED_BY_PROVIDER"), ("no-permission", "ACCESS_DENIED"),
])
def test_why_a_payment_is_not_refundable(store, case, reason):
    setup = {
        "not-captured": {"status": PaymentStatus.DRAFT},
        "one-at-a-time": {"one_refund_at_a_time": True},
        "method": {"method": PaymentMethodType.DIGITAL_WALLET, "refund_unsupported_methods": "DigitalWallet"},
        "inactive-gateway": {"status_of_gateway": "Inactive"},
        "no-permission": {},
    }[case]
    gateway_status = setup.pop("status_of_gateway", None)
    _, charge = _charge(store, "50.00", **setup)
    if gateway_status:
        with session_scope(store) as s:
            s.get(PaymentGateway, s.get(Payment, charge).payment_gateway_id).status = gateway_status
    if case == "one-at-a-time":
        _reserve(store, charge, amount=D("1.00"))
    answer = _refundability(store, charge, caller_may_refund=case != "no-permission")
    assert (answer.refundable, answer.non_refundable_reason) == (False, reason)
    if case != "no-permission":
        before = snapshot(store)
        with pytest.raises(NotRefundableError):
            _reserve(store, charge, amount=D("1.00"))
        assert snapshot(store) == before


def test_paging_through_a_thousand_refunds_while_more_arrive_sees_each_once(own_store):
    """1,000 refunds on one order; a client pages through them 97 at a time while 7 more
    arrive after every page: every first 1,000 is seen exactly once, nothing twice. (On a
    store of its own: its refunds stay Pending, and the shared store's resolvers would
    otherwise send them all.)"""
    store = own_store
    order, first = _charge(store, "10000.00")
    with session_scope(store) as s:
        second = create_payment(session=s, obj_in=PaymentCreate(
            order_payment_summary_id=order.summaries[0], payment_gateway_id=order.gateway_id, amount=D("10000.00"))).id
    existing = [_reserve(store, first if n % 2 else second, amount=D("1.00")) for n in range(1000)]
    seen, cursor, arrived = [], None, []
    query = RefundQuery(filter=RefundFilter(order_summary_id=order.order_summary_id), limit=97)
    while True:
        with session_scope(store) as s:
            page = query_refunds(session=s, query=query if cursor is None else RefundQuery(cursor=cursor, limit=97))
        seen += [r.id for r in page.refunds]
        arrived += [_reserve(store, first, amount=D("1.00")) for _ in range(7)]
        if not page.has_next:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    assert set(existing) <= set(seen) and set(seen) <= set(existing) | set(arrived)
    with session_scope(store) as s:  # filters: one charge, newest first, statuses
        newest = query_refunds(session=s, query=RefundQuery(filter=RefundFilter(charge_id=second), order=SortOrder.DESC,
                                                            limit=3))
        assert [r.charge_id for r in newest.refunds] == [second] * 3
        assert newest.refunds[0].created_date >= newest.refunds[-1].created_date
        none_succeeded = query_refunds(session=s, query=RefundQuery(filter=RefundFilter(
            order_summary_id=order.order_summary_id, statuses=[RefundState.SUCCEEDED])))
        assert none_succeeded.refunds == [] and not none_succeeded.has_next
    assert_ledger_invariants(store)
