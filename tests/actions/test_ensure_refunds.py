"""The ensure_refunds action inside a small flow, against the real Prefect server and store."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal as D

import pytest
from prefect import flow
from sqlmodel import select

from actions.ensure_refunds import EnsureRefundsInput, RefundSequence, ensure_refunds
from blocks import SandboxGateway
from db.engine import session_scope
from db.models import (
    CreditMemo, CreditMemoInvApplication, Invoice, InteractionStatus, OrderPaymentSummary, Payment, PaymentGatewayLog,
    ProcessException, Refund, RefundStatus,
)
from domain.errors import InsufficientAvailableToRefundError, InvalidInputError, NotFoundError
from gateways.sandbox_ledger import SandboxGatewayRefund
from tests.factories import make_order
from tests.ledger import assert_ledger_invariants, snapshot

SCRIPTED = "test-scripted-gateway"


@pytest.fixture(scope="module", autouse=True)
def scripted_gateway(prefect_api):
    SandboxGateway(outcomes_by_amount={"13.13": "decline", "14.14": "error", "66.60": "timeout"}).save(SCRIPTED, overwrite=True)


@flow(name="test-ensure-refunds")
def run_action(order_summary_id: str, request: EnsureRefundsInput, operation_id: str):
    return ensure_refunds(order_summary_id, request, operation_id)


def _order(store, **kwargs):
    with session_scope(store) as s:
        return make_order(s, gateway_block=SCRIPTED, **kwargs)


def _get(store, model, record_id):
    with session_scope(store) as s:
        return s.get(model, record_id)


def test_credit_memo_refunded_to_largest_summary(store):
    order = _order(store, payments=["60.00", "40.00"], credit_memo="30.00")
    out = run_action(order.order_summary_id, EnsureRefundsInput(credit_memo_id=order.credit_memo_id), str(uuid.uuid4()))

    assert [(r.order_payment_summary_id, r.amount, r.status) for r in out.refunds] == [
        (order.summaries[0], D("30.00"), RefundStatus.PROCESSED)]
    assert out.refunded_amount == D("30.00") and out.unrefunded_credit_memo_balance == D("0.00")
    first = _get(store, OrderPaymentSummary, order.summaries[0])
    assert (first.refunded_amount, first.pending_refund_amount) == (D("30.00"), D("0.00"))
    assert _get(store, OrderPaymentSummary, order.summaries[1]).refunded_amount == D("0")
    assert _get(store, CreditMemo, order.credit_memo_id).balance == D("0")
    with session_scope(store) as s:
        log = s.exec(select(PaymentGatewayLog).where(PaymentGatewayLog.reference_entity_id == out.refunds[0].refund_id)).one()
        refund = s.get(Refund, out.refunds[0].refund_id)
    assert log.interaction_status == InteractionStatus.SUCCESS and log.sf_ref_number == refund.idempotency_key
    assert refund.gateway_ref_number and refund.gateway_ref_number.startswith("re_sbx_")
    # Salesforce's Refund fields, kept on the row (migration 0017): the payment's mode and gateway, the answer's code.
    assert (refund.processing_mode, refund.payment_gateway_id, refund.sf_result_code) == (
        "Salesforce", order.gateway_id, log.sf_result_code) and refund.sf_result_code == "Success"
    assert_ledger_invariants(store)


def test_exact_match_then_excess_funds(store):
    order = _order(store, payments=["60.00", "40.00", "25.00"], credit_memo="40.00")
    out = run_action(order.order_summary_id,
                     EnsureRefundsInput(credit_memo_id=order.credit_memo_id, excess_funds_amount=D("70.00")), str(uuid.uuid4()))
    got = sorted((r.order_payment_summary_id, r.funding_source, r.amount) for r in out.refunds)
    # step 3: 40 matches the second summary exactly; step 4: 70 -> largest (60), then 10 from 25.
    assert got == sorted([
        (order.summaries[1], "CreditMemo", D("40.00")),
        (order.summaries[0], "ExcessFunds", D("60.00")),
        (order.summaries[2], "ExcessFunds", D("10.00")),
    ])
    assert out.refunded_amount == D("110.00") and out.unrefunded_excess_funds == D("0.00")
    assert_ledger_invariants(store)


def test_invoices_paid_from_credit_memo_before_refunding(store):
    order = _order(store, payments=["60.00"], credit_memo="30.00", invoices=["5.00"])
    out = run_action(order.order_summary_id, EnsureRefundsInput(
        credit_memo_id=order.credit_memo_id, invoices_to_pay=order.invoice_ids), str(uuid.uuid4()))
    assert [(p.invoice_id, p.amount) for p in out.invoices_paid] == [(order.invoice_ids[0], D("5.00"))]
    assert [r.amount for r in out.refunds] == [D("25.00")]
    assert _get(store, Invoice, order.invoice_ids[0]).balance == D("0")
    assert _get(store, CreditMemo, order.credit_memo_id).balance == D("0")
    with session_scope(store) as s:
        applications = s.exec(select(CreditMemoInvApplication).where(CreditMemoInvApplication.invoice_id == order.invoice_ids[0])).all()
    assert [a.amount for a in applications] == [D("5.00")]
    assert_ledger_invariants(store)


def test_refund_spread_over_the_payments_of_one_summary(store):
    order = _order(store, payments=[["30.00", "10.00"]], credit_memo="35.00")
    out = run_action(order.order_summary_id, EnsureRefundsInput(credit_memo_id=order.credit_memo_id), str(uuid.uuid4()))
    first, second = order.payments[order.summaries[0]]
    assert sorted((r.payment_id, r.amount) for r in out.refunds) == sorted([(first, D("30.00")), (second, D("5.00"))])
    assert _get(store, Payment, first).refunded_amount == D("30.00")
    assert _get(store, Payment, second).refunded_amount == D("5.00")
    assert_ledger_invariants(store)


def test_sequences_with_allow_partial_leave_the_rest_on_the_memo(store):
    order = _order(store, payments=["60.00", "40.00"], credit_memo="50.00")
    request = EnsureRefundsInput(credit_memo_id=order.credit_memo_id, is_allow_partial=True,
                                 sequences=[RefundSequence(amount=D("20.00"), order_payment_summary_id=order.summaries[1])])
    out = run_action(order.order_summary_id, request, str(uuid.uuid4()))
    assert [(r.order_payment_summary_id, r.amount) for r in out.refunds] == [(order.summaries[1], D("20.00"))]
    assert out.unrefunded_credit_memo_balance == D("30.00")
    assert _get(store, CreditMemo, order.credit_memo_id).balance == D("30.00")
    assert_ledger_invariants(store)


def test_decline_releases_the_reservation_and_leaves_a_process_exception(store):
    order = _order(store, payments=["60.00"], credit_memo="13.13")
    out = run_action(order.order_summary_id, EnsureRefundsInput(credit_memo_id=order.credit_memo_id), str(uuid.uuid4()))
    (refund,) = out.refunds
    assert refund.status == RefundStatus.FAILED and refund.gateway_result_code == "card_declined"
    assert _get(store, Refund, refund.refund_id).sf_result_code == "Decline"
    assert out.failed_amount == D("13.13") and out.refunded_amount == D("0.00")
    ops = _get(store, OrderPaymentSummary, order.summaries[0])
    assert (ops.refunded_amount, ops.pending_refund_amount) == (D("0"), D("0"))
    assert _get(store, CreditMemo, order.credit_memo_id).balance == D("13.13")  # back on the memo
    with session_scope(store) as s:
        exceptions = s.exec(select(ProcessException).where(ProcessException.attached_to_id == refund.refund_id)).all()
        log = s.exec(select(PaymentGatewayLog).where(PaymentGatewayLog.reference_entity_id == refund.refund_id)).one()
    assert len(exceptions) == 1 and "card_declined" in exceptions[0].message
    assert (log.interaction_status, log.sf_result_code) == (InteractionStatus.FAILED, "Decline")
    assert_ledger_invariants(store)


def test_gateway_error_fails_the_refund_not_the_operation(store):
    order = _order(store, payments=["60.00"], credit_memo="14.14")
    out = run_action(order.order_summary_id, EnsureRefundsInput(credit_memo_id=order.credit_memo_id), str(uuid.uuid4()))
    assert [r.status for r in out.refunds] == [RefundStatus.FAILED]
    assert out.process_exception_ids
    assert_ledger_invariants(store)


def test_timeout_keeps_the_amount_reserved_as_unknown(store):
    order = _order(store, payments=["100.00"], credit_memo="66.60")
    out = run_action(order.order_summary_id, EnsureRefundsInput(credit_memo_id=order.credit_memo_id), str(uuid.uuid4()))
    (refund,) = out.refunds
    assert refund.status == RefundStatus.UNKNOWN and out.unknown_amount == D("66.60")
    ops = _get(store, OrderPaymentSummary, order.summaries[0])
    assert (ops.refunded_amount, ops.pending_refund_amount) == (D("0"), D("66.60"))
    with session_scope(store) as s:
        log = s.exec(select(PaymentGatewayLog).where(PaymentGatewayLog.reference_entity_id == refund.refund_id)).one()
        key = s.get(Refund, refund.refund_id).idempotency_key
        booked = s.exec(select(SandboxGatewayRefund).where(SandboxGatewayRefund.idempotency_key == key)).first()
    assert log.interaction_status == InteractionStatus.TIMEOUT
    assert booked is not None  # the gateway did act: only a lookup may settle it, never a blind retry
    assert_ledger_invariants(store)


def test_a_rerun_reports_the_process_exceptions_its_earlier_attempt_filed(store):
    """The first attempt's refund was declined (a ProcessException filed); the re-run sends
    nothing more and its output still names that exception, once."""
    order = _order(store, payments=["60.00"], credit_memo="13.13")
    operation = str(uuid.uuid4())
    first = run_action(order.order_summary_id, EnsureRefundsInput(credit_memo_id=order.credit_memo_id), operation)
    again = run_action(order.order_summary_id, EnsureRefundsInput(credit_memo_id=order.credit_memo_id), operation)
    assert len(first.process_exception_ids) == 1
    assert again.process_exception_ids == first.process_exception_ids
    assert [r.status for r in again.refunds] == [RefundStatus.FAILED]
    with session_scope(store) as s:
        assert len(s.exec(select(ProcessException).where(ProcessException.background_operation_id == operation)).all()) == 1
    assert_ledger_invariants(store)


def test_rerunning_an_operation_finishes_it_without_refunding_twice(store):
    order = _order(store, payments=["60.00", "40.00"], credit_memo="80.00")
    operation = str(uuid.uuid4())
    first = run_action(order.order_summary_id, EnsureRefundsInput(credit_memo_id=order.credit_memo_id), operation)
    again = run_action(order.order_summary_id, EnsureRefundsInput(credit_memo_id=order.credit_memo_id), operation)
    assert [r.refund_id for r in again.refunds] == [r.refund_id for r in first.refunds]
    assert again.refunded_amount == first.refunded_amount == D("80.00")
    with session_scope(store) as s:
        keys = [r.idempotency_key for r in s.exec(select(Refund).where(Refund.background_operation_id == operation))]
        booked = s.exec(select(SandboxGatewayRefund).where(SandboxGatewayRefund.idempotency_key.in_(keys))).all()
    assert len(booked) == len(keys) == 2
    assert_ledger_invariants(store)


@pytest.mark.parametrize("case", ["over-available", "foreign-sequence", "unknown-memo", "foreign-invoice", "no-input"])
def test_invalid_requests_change_nothing(store, case):
    order = _order(store, payments=["60.00", "40.00"], credit_memo="30.00", invoices=["5.00"])
    other = _order(store, payments=["10.00"], credit_memo="1.00", invoices=["1.00"])
    request, error = {
        "over-available": (EnsureRefundsInput(credit_memo_id=order.credit_memo_id, excess_funds_amount=D("70.01")),
                           InsufficientAvailableToRefundError),
        "foreign-sequence": (EnsureRefundsInput(credit_memo_id=order.credit_memo_id, sequences=[
            RefundSequence(amount=D("5.00"), order_payment_summary_id=other.summaries[0])]), InvalidInputError),
        "unknown-memo": (EnsureRefundsInput(credit_memo_id="50gAAAAAAAAAAAAAAA"), NotFoundError),
        "foreign-invoice": (EnsureRefundsInput(credit_memo_id=order.credit_memo_id, invoices_to_pay=other.invoice_ids),
                            InvalidInputError),
        "no-input": (EnsureRefundsInput(), InvalidInputError),
    }[case]
    before = snapshot(store)
    with pytest.raises(error):
        run_action(order.order_summary_id, request, str(uuid.uuid4()))
    assert snapshot(store) == before
    assert_ledger_invariants(store)


def test_concurrent_operations_never_refund_beyond_available(store):
    """Two operations race for the same 100.00: together they ask 120.00; one must be refused."""
    order = _order(store, payments=["60.00", "40.00"])
    outcomes: list[object] = []

    def attempt():
        try:
            outcomes.append(run_action(order.order_summary_id, EnsureRefundsInput(excess_funds_amount=D("60.00")), str(uuid.uuid4())))
        except InsufficientAvailableToRefundError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    refused = [o for o in outcomes if isinstance(o, InsufficientAvailableToRefundError)]
    done = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(refused) == 1 and len(done) == 1
    assert done[0].refunded_amount == D("60.00")
    assert_ledger_invariants(store)


FORGETFUL = "test-forgetful-gateway"


@pytest.mark.parametrize("gateway_acted_before_crash", [True, False])
def test_resumed_operation_refunds_once_even_if_the_gateway_ignores_keys(store, gateway_acted_before_crash):
    """The run crashed after reserving (and maybe after the gateway acted); a re-run of the
    same operation asks the gateway first, so a gateway that ignores idempotency keys
    (honour_idempotency_keys=False, like localstripe) still refunds once."""
    from actions.ensure_refunds import reserve_refunds
    from actions.refunds import submit_refund
    from db.models import PaymentGateway
    from gateways.registry import adapter_for

    SandboxGateway(honour_idempotency_keys=False).save(FORGETFUL, overwrite=True)
    with session_scope(store) as s:
        order = make_order(s, payments=["60.00"], credit_memo="20.00", gateway_block=FORGETFUL)
    operation = str(uuid.uuid4())
    request = EnsureRefundsInput(credit_memo_id=order.credit_memo_id)
    with session_scope(store) as s:
        (refund,) = reserve_refunds(session=s, order_summary_id=order.order_summary_id, request=request, operation_id=operation)
    if gateway_acted_before_crash:
        with session_scope(store) as s:
            payment = s.get(Payment, refund.payment_id)
            adapter = adapter_for(s.get(PaymentGateway, payment.payment_gateway_id))

        @flow
        def crashing_first_attempt():
            return submit_refund(refund, adapter, payment.gateway_ref_number)

        crashing_first_attempt()  # the gateway acted; the run died before settling

    out = run_action(order.order_summary_id, request, operation)
    assert [(r.refund_id, r.status) for r in out.refunds] == [(refund.id, RefundStatus.PROCESSED)]
    with session_scope(store) as s:
        booked = s.exec(select(SandboxGatewayRefund).where(SandboxGatewayRefund.idempotency_key == refund.idempotency_key)).all()
    assert len(booked) == 1
    assert_ledger_invariants(store)


def test_forgetful_gateway_books_every_call(store):
    """The fake really ignores keys, so the test above proves something."""
    from gateways.contract import RefundCommand
    from gateways.sandbox import SandboxGatewayAdapter

    adapter = SandboxGatewayAdapter(store_url=store, honour_idempotency_keys=False)
    key = f"probe-{uuid.uuid4()}"
    for _ in range(2):
        adapter.refund(RefundCommand(idempotency_key=key, charge_reference="ch_x", amount=D("1.00"), currency="USD"))
    with session_scope(store) as s:
        rows = s.exec(select(SandboxGatewayRefund).where(SandboxGatewayRefund.idempotency_key == key)).all()
        for row in rows:  # not ours: keep the shared store's books consistent for later ledger checks
            s.delete(row)
    assert len(rows) == 2


def test_resolver_settles_an_unknown_refund_from_the_gateways_record(store):
    from actions.resolve_refunds import resolve_refunds

    order = _order(store, payments=["100.00"], credit_memo="66.60")
    out = run_action(order.order_summary_id, EnsureRefundsInput(credit_memo_id=order.credit_memo_id), str(uuid.uuid4()))
    (refund,) = out.refunds
    assert refund.status == RefundStatus.UNKNOWN

    @flow
    def resolve():
        return resolve_refunds(older_than_seconds=0)

    summary = resolve()
    assert summary.resolved.get("Processed", 0) >= 1
    assert _get(store, Refund, refund.refund_id).status == RefundStatus.PROCESSED  # the gateway had booked it
    ops = _get(store, OrderPaymentSummary, order.summaries[0])
    assert (ops.refunded_amount, ops.pending_refund_amount) == (D("66.60"), D("0"))
    with session_scope(store) as s:
        log = s.exec(select(PaymentGatewayLog).where(PaymentGatewayLog.reference_entity_id == refund.refund_id)).one()
    assert log.interaction_status == InteractionStatus.SUCCESS
    assert_ledger_invariants(store)


def test_resolver_sends_a_refund_whose_operation_died_before_sending(store):
    from actions.ensure_refunds import reserve_refunds
    from actions.resolve_refunds import resolve_refunds

    order = _order(store, payments=["50.00"], credit_memo="20.00")
    with session_scope(store) as s:
        (refund,) = reserve_refunds(session=s, order_summary_id=order.order_summary_id,
                                    request=EnsureRefundsInput(credit_memo_id=order.credit_memo_id),
                                    operation_id=str(uuid.uuid4()))  # no such flow run: it is not running

    @flow
    def resolve():
        return resolve_refunds(older_than_seconds=0)

    resolve()
    assert _get(store, Refund, refund.id).status == RefundStatus.PROCESSED
    with session_scope(store) as s:
        booked = s.exec(select(SandboxGatewayRefund).where(SandboxGatewayRefund.idempotency_key == refund.idempotency_key)).all()
    assert len(booked) == 1
    assert_ledger_invariants(store)
