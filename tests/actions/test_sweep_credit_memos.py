"""The sweep-credit-memos flow against the real Prefect server and store, on both backends.

The store is shared by the whole session, so most tests name their credit memos
(``creditMemoIds``) to keep other tests' memos out of their counts.
"""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
from prefect import flow
from prefect.exceptions import ParameterTypeError
from sqlmodel import select

from actions.ensure_funds import EnsureFundsInput, ensure_funds
from actions.ensure_refunds import EnsureRefundsInput, RefundSequence, reserve_refunds
from actions.sweep_credit_memos import SweepCreditMemosInput
from blocks import SandboxGateway
from db.engine import session_scope
from db.models import (
    CreditMemo, CreditMemoCreate, InteractionStatus, OrderPaymentSummary, Payment, PaymentAuthorizationCreate,
    PaymentGatewayLog, PaymentStatus, ProcessException, Refund, RefundStatus,
)
from db.sobjects import create_credit_memo, create_payment_authorization
from domain.errors import InvalidInputError, NotFoundError
from flows.sweep_credit_memos import sweep_credit_memos
from gateways.sandbox_ledger import SandboxGatewayRefund
from tests.factories import make_order
from tests.ledger import assert_ledger_invariants, snapshot

SCRIPTED = "test-sweep-scripted-gateway"
DECLINE, ERROR, TIMEOUT, CAPTURE_TIMEOUT = "13.13", "14.14", "66.60", "77.70"


@pytest.fixture(scope="module", autouse=True)
def scripted_gateway(prefect_api):
    SandboxGateway(outcomes_by_amount={DECLINE: "decline", ERROR: "error", TIMEOUT: "timeout",
                                       CAPTURE_TIMEOUT: "timeout"}).save(SCRIPTED, overwrite=True)


def _order(store, *, more_memos=(), **kwargs):
    """make_order on the scripted gateway; ``more_memos`` adds credit memos after the first."""
    with session_scope(store) as s:
        order = make_order(s, gateway_block=SCRIPTED, **kwargs)
        extra = [create_credit_memo(session=s, obj_in=CreditMemoCreate(
            order_summary_id=order.order_summary_id, total_amount=D(amount))).id for amount in more_memos]
    return order, [order.credit_memo_id, *extra]


def _sweep(*memo_ids, **options):
    return sweep_credit_memos(SweepCreditMemosInput(older_than_seconds=0, credit_memo_ids=list(memo_ids), **options))


def _get(store, model, record_id):
    with session_scope(store) as s:
        return s.get(model, record_id)


def _refunds(store, memo_id):
    with session_scope(store) as s:
        return list(s.exec(select(Refund).where(Refund.credit_memo_id == memo_id).order_by(Refund.created_date)))


def test_sweeps_the_memos_of_several_orders_as_ensure_refunds_would(store):
    a, (a1, a2) = _order(store, payments=["60.00", "40.00"], credit_memo="30.00", more_memos=["20.00"])
    b, (b1,) = _order(store, payments=[["30.00", "10.00"]], credit_memo="35.00")
    c, (c1,) = _order(store, payments=["20.00"], credit_memo="20.00", currency="EUR")

    out = _sweep(a1, a2, b1, c1, batch_size=3)  # two batches; both of a's memos in the first

    assert (out.examined, out.swept, out.skipped, out.process_exceptions) == (4, 4, [], 0)
    assert out.refunds_by_status == {"Processed": 5}
    usd, eur = out.totals["USD"], out.totals["EUR"]
    assert (usd.credit_memos, usd.refunds, usd.refunded_amount, usd.failed_amount, usd.unknown_amount) == (
        3, 4, D("85.00"), D("0.00"), D("0.00"))
    assert (eur.credit_memos, eur.refunds, eur.refunded_amount) == (1, 1, D("20.00"))
    assert out.model_dump(mode="json", by_alias=True)["totals"]["USD"]["refundedAmount"] == "85.00"
    # Seed 000 per memo, in order: 30 to the largest (60), then 20 to the largest left (40 > 30).
    assert [(r.order_payment_summary_id, r.amount) for r in _refunds(store, a1)] == [(a.summaries[0], D("30.00"))]
    assert [(r.order_payment_summary_id, r.amount) for r in _refunds(store, a2)] == [(a.summaries[1], D("20.00"))]
    first, second = b.payments[b.summaries[0]]
    assert sorted((r.payment_id, r.amount) for r in _refunds(store, b1)) == sorted([(first, D("30.00")), (second, D("5.00"))])
    for memo in (a1, a2, b1, c1):
        assert _get(store, CreditMemo, memo).balance == 0
        for refund in _refunds(store, memo):
            assert refund.status == RefundStatus.PROCESSED and refund.idempotency_key == f"om-refund-{refund.id}"
            with session_scope(store) as s:
                log = s.exec(select(PaymentGatewayLog).where(PaymentGatewayLog.reference_entity_id == refund.id)).one()
            assert log.interaction_status == InteractionStatus.SUCCESS and log.sf_ref_number == refund.idempotency_key
    ops = _get(store, OrderPaymentSummary, a.summaries[0])
    assert (ops.refunded_amount, ops.pending_refund_amount) == (D("30.00"), D("0"))
    assert _get(store, OrderPaymentSummary, c.summaries[0]).refunded_amount == D("20.00")
    assert_ledger_invariants(store)


def test_without_a_list_every_old_enough_memo_with_a_balance_is_swept(store):
    # a currency no other test uses: the store is shared, and a sweep of everything would take their memos too
    _a, (a1,) = _order(store, payments=["50.00"], credit_memo="10.00", currency="SEK")
    _b, (b1,) = _order(store, payments=["50.00"], credit_memo="12.34", currency="SEK")
    out = sweep_credit_memos(SweepCreditMemosInput(older_than_seconds=0, currency_iso_code="SEK"))
    assert out.examined >= 2 and out.totals["SEK"].refunded_amount >= D("22.34")
    assert _get(store, CreditMemo, a1).balance == _get(store, CreditMemo, b1).balance == 0
    assert_ledger_invariants(store)


def test_a_memo_whose_order_has_an_unpaid_invoice_is_swept_only_when_named(store):
    """That balance may be meant for the invoice first (Ensure Refunds' invoicesToPay)."""
    order, (memo,) = _order(store, payments=["50.00"], credit_memo="20.00", invoices=["5.00"], currency="NOK")
    out = sweep_credit_memos(SweepCreditMemosInput(older_than_seconds=0, currency_iso_code="NOK"))
    assert out.examined == 0 and _get(store, CreditMemo, memo).balance == D("20.00")
    named = _sweep(memo)
    assert named.swept == 1 and _get(store, CreditMemo, memo).balance == 0
    assert_ledger_invariants(store)


def test_age_count_and_currency_limits(store):
    memos = [_order(store, payments=["50.00"], credit_memo="10.00")[1][0] for _ in range(3)]
    _e, (euro,) = _order(store, payments=["50.00"], credit_memo="10.00", currency="EUR")
    young = sweep_credit_memos(SweepCreditMemosInput(credit_memo_ids=[*memos, euro]))  # default: an hour old
    assert (young.examined, young.swept) == (0, 0)
    assert _sweep(*memos, euro, currency_iso_code="eur").totals.keys() == {"EUR"}
    out = _sweep(*memos, max_credit_memos=2)
    assert out.swept == 2
    assert [_get(store, CreditMemo, m).balance for m in memos] == [D("0"), D("0"), D("10.00")]  # oldest first
    assert_ledger_invariants(store)


def test_partial_captures_refund_what_was_captured_and_skip_the_rest(store):
    """Authorized 100, captured 40: a 30.00 memo is refunded; a 60.00 memo is more than the
    order can refund and is left whole; so is a memo whose order's capture is still pending."""
    covered, (covered_memo,) = _order(store, payments=["40.00"], credit_memo="30.00")
    short, (short_memo,) = _order(store, payments=["40.00"], credit_memo="60.00")
    pending, (pending_memo,) = _order(store, payments=[[]], credit_memo="10.00", invoices=[CAPTURE_TIMEOUT])
    with session_scope(store) as s:
        for order in (covered, short, pending):
            create_payment_authorization(session=s, obj_in=PaymentAuthorizationCreate(
                order_payment_summary_id=order.summaries[0], payment_gateway_id=order.gateway_id, amount=D("100.00")))

    @flow
    def capture():
        return ensure_funds(pending.order_summary_id, EnsureFundsInput(invoice_id=pending.invoice_ids[0]), str(uuid.uuid4()))

    assert capture().captures[0].status == PaymentStatus.DRAFT  # the capture timed out: pending, not refundable
    assert _get(store, OrderPaymentSummary, pending.summaries[0]).pending_capture_amount == D(CAPTURE_TIMEOUT)

    out = _sweep(covered_memo, short_memo, pending_memo)

    assert out.swept == 1 and out.totals["USD"].refunded_amount == D("30.00")
    assert {(s.credit_memo_id, s.reason) for s in out.skipped} == {
        (short_memo, "INSUFFICIENT_AVAILABLE_TO_REFUND"), (pending_memo, "INSUFFICIENT_AVAILABLE_TO_REFUND")}
    assert _get(store, CreditMemo, short_memo).balance == D("60.00") and _refunds(store, short_memo) == []
    assert _get(store, CreditMemo, pending_memo).balance == D("10.00") and _refunds(store, pending_memo) == []
    ops = _get(store, OrderPaymentSummary, covered.summaries[0])
    assert (ops.authorization_amount, ops.captured_amount, ops.refunded_amount) == (D("100.00"), D("40.00"), D("30.00"))
    assert_ledger_invariants(store)


def test_declines_errors_and_timeouts_are_settled_as_ensure_refunds_settles_them(store):
    _ok, (ok,) = _order(store, payments=["100.00"], credit_memo="10.00")
    _d, (declined,) = _order(store, payments=["100.00"], credit_memo=DECLINE)
    _e, (errored,) = _order(store, payments=["100.00"], credit_memo=ERROR)
    timed_out_order, (timed_out,) = _order(store, payments=["100.00"], credit_memo=TIMEOUT)

    out = _sweep(ok, declined, errored, timed_out)  # the run completes: no gateway answer fails it

    assert out.refunds_by_status == {"Failed": 2, "Processed": 1, "Unknown": 1}
    usd = out.totals["USD"]
    assert (usd.refunded_amount, usd.failed_amount, usd.unknown_amount) == (D("10.00"), D("27.27"), D(TIMEOUT))
    assert out.process_exceptions == 3
    for memo, code, sf_result in ((declined, "card_declined", "Decline"), (errored, "processing_error", "SystemError")):
        (refund,) = _refunds(store, memo)
        assert refund.status == RefundStatus.FAILED and refund.gateway_result_code == code
        assert _get(store, CreditMemo, memo).balance == refund.amount  # released back to the memo
        with session_scope(store) as s:
            log = s.exec(select(PaymentGatewayLog).where(PaymentGatewayLog.reference_entity_id == refund.id)).one()
            exceptions = s.exec(select(ProcessException).where(ProcessException.attached_to_id == refund.id)).all()
        assert (log.interaction_status, log.sf_result_code) == (InteractionStatus.FAILED, sf_result)
        assert len(exceptions) == 1 and code in exceptions[0].message
        assert _get(store, Payment, refund.payment_id).pending_refund_amount == D("0")
    (unknown,) = _refunds(store, timed_out)
    assert unknown.status == RefundStatus.UNKNOWN
    assert _get(store, CreditMemo, timed_out).balance == D("0")  # kept reserved until the gateway is asked
    ops = _get(store, OrderPaymentSummary, timed_out_order.summaries[0])
    assert (ops.refunded_amount, ops.pending_refund_amount) == (D("0"), D(TIMEOUT))
    assert_ledger_invariants(store)


def test_running_twice_refunds_nothing_more(store):
    _ok, (ok,) = _order(store, payments=["100.00"], credit_memo="10.00")
    _d, (declined,) = _order(store, payments=["100.00"], credit_memo=DECLINE)
    _t, (timed_out,) = _order(store, payments=["100.00"], credit_memo=TIMEOUT)
    first = _sweep(ok, declined, timed_out)
    assert first.swept == 3
    before = snapshot(store)

    again = _sweep(ok, declined, timed_out)

    assert (again.examined, again.swept, again.refunds_by_status) == (1, 0, {})  # only the declined memo has a balance
    assert [(s.credit_memo_id, s.reason) for s in again.skipped] == [(declined, "PREVIOUS_REFUND_FAILED")]
    assert snapshot(store) == before
    assert_ledger_invariants(store)

    retried = _sweep(ok, declined, timed_out, retry_failed=True)  # asked for: tried again, declined again
    assert retried.swept == 1 and retried.totals["USD"].failed_amount == D(DECLINE)
    assert [r.status for r in _refunds(store, declined)] == [RefundStatus.FAILED, RefundStatus.FAILED]
    assert_ledger_invariants(store)


def test_a_memo_with_a_refund_in_progress_is_left_alone(store):
    order, (memo,) = _order(store, payments=["60.00", "40.00"], credit_memo="50.00")
    with session_scope(store) as s:  # an operation reserved 20.00 of it and has not sent it yet
        reserve_refunds(session=s, order_summary_id=order.order_summary_id, operation_id=str(uuid.uuid4()),
                        request=EnsureRefundsInput(credit_memo_id=memo, is_allow_partial=True, sequences=[
                            RefundSequence(amount=D("20.00"), order_payment_summary_id=order.summaries[1])]))
    before = snapshot(store)
    out = _sweep(memo)
    assert out.swept == 0 and [s.reason for s in out.skipped] == ["REFUND_IN_PROGRESS"]
    assert snapshot(store) == before
    assert_ledger_invariants(store)


@pytest.mark.parametrize("case", ["unknown-memo", "same-memo-twice", "unknown-currency", "batch-size-zero",
                                  "negative-age", "unknown-field"])
def test_bad_input_gets_a_typed_error_and_changes_nothing(store, case):
    _order_, (memo,) = _order(store, payments=["50.00"], credit_memo="10.00")
    sweep_input, error = {
        "unknown-memo": ({"creditMemoIds": [memo, "50gAAAAAAAAAAAAAAA"]}, NotFoundError),
        "same-memo-twice": ({"creditMemoIds": [memo, memo]}, InvalidInputError),
        "unknown-currency": ({"creditMemoIds": [memo], "currencyIsoCode": "ZZZ"}, InvalidInputError),
        "batch-size-zero": ({"creditMemoIds": [memo], "batchSize": 0}, ParameterTypeError),
        "negative-age": ({"creditMemoIds": [memo], "olderThanSeconds": -1}, ParameterTypeError),
        "unknown-field": ({"creditMemoIds": [memo], "dryRun": True}, ParameterTypeError),
    }[case]
    before = snapshot(store)
    with pytest.raises(error):
        sweep_credit_memos(sweep_input={"olderThanSeconds": 0, **sweep_input})
    assert snapshot(store) == before
    assert _get(store, CreditMemo, memo).balance == D("10.00")


def test_gateway_bookings_match_the_refunds_once_each(store):
    """Every refund the sweep sent was booked once by the gateway under its own key."""
    memos = [_order(store, payments=["30.00", "20.00"], credit_memo="45.00")[1][0] for _ in range(3)]
    _sweep(*memos, batch_size=2)
    with session_scope(store) as s:
        keys = [r.idempotency_key for m in memos for r in s.exec(select(Refund).where(Refund.credit_memo_id == m))]
        booked = s.exec(select(SandboxGatewayRefund).where(SandboxGatewayRefund.idempotency_key.in_(keys))).all()
    assert len(keys) == 6 and sorted(b.idempotency_key for b in booked) == sorted(keys)
    assert_ledger_invariants(store)


def test_a_sweep_that_died_after_reserving_is_finished_by_the_resolver(store):
    """Refunds a batch wrote Pending before its run died are sent by resolve-gateway-outcomes,
    with their keys, once; meanwhile their memos have no balance for another sweep to find."""
    from actions.sweep_credit_memos import reserve_batch
    from flows.resolve_gateway_outcomes import resolve_gateway_outcomes

    order, memos = _order(store, payments=["100.00"], credit_memo="10.00", more_memos=["20.00"])
    with session_scope(store) as s:
        reserved = reserve_batch(s, [(m, order.order_summary_id) for m in memos], str(uuid.uuid4()), retry_failed=False)
    assert len(reserved.refunds) == 2 and _sweep(*memos).examined == 0
    # The resolver takes the oldest 500 first, and the shared store holds other tests'
    # pending refunds (a paging test leaves 1,000): put these at the head of the queue.
    from datetime import UTC, datetime

    with session_scope(store) as s:
        for refund in reserved.refunds:
            s.get(Refund, refund.id).created_date = datetime(2000, 1, 1, tzinfo=UTC)
    resolve_gateway_outcomes(older_than_seconds=0)
    assert [r.status for m in memos for r in _refunds(store, m)] == [RefundStatus.PROCESSED, RefundStatus.PROCESSED]
    assert_ledger_invariants(store)
