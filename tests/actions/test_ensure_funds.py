"""The ensure_funds action inside a small flow, against the real Prefect server and store."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal as D

import pytest
from prefect import flow
from sqlmodel import select

from actions.ensure_funds import EnsureFundsInput, ensure_funds
from blocks import SandboxGateway
from db.engine import session_scope
from db.ids import new_id
from db.models import (
    InteractionStatus, InteractionType, Invoice, OrderPaymentSummary, Payment, PaymentApplicationType,
    PaymentAuthorization, PaymentAuthorizationCreate, PaymentGatewayLog, PaymentLineInvoice, PaymentStatus,
    ProcessException,
)
from db.sobjects import create_payment_authorization
from domain.errors import InvalidInputError, NotFoundError
from domain.funds import InsufficientFundsError
from gateways.sandbox_ledger import SandboxGatewayCapture
from tests.factories import make_order
from tests.ledger import assert_ledger_invariants, snapshot

SCRIPTED = "test-funds-scripted-gateway"
FORGETFUL = "test-funds-forgetful-gateway"
DECLINE, ERROR, TIMEOUT = "31.31", "41.41", "77.70"

APPLIED, PENDING, UNAPPLIED = PaymentApplicationType.APPLIED, PaymentApplicationType.PENDING, PaymentApplicationType.UNAPPLIED


@pytest.fixture(scope="module", autouse=True)
def scripted_gateway(prefect_api):
    SandboxGateway(outcomes_by_amount={DECLINE: "decline", ERROR: "error", TIMEOUT: "timeout"}).save(SCRIPTED, overwrite=True)
    SandboxGateway(honour_idempotency_keys=False).save(FORGETFUL, overwrite=True)


@flow(name="test-ensure-funds")
def run_action(order_summary_id: str, request: EnsureFundsInput, operation_id: str):
    return ensure_funds(order_summary_id, request, operation_id)


# --- helpers -------------------------------------------------------------------------


def _order(store, *, payments=((),), authorizations=(), invoices=(), gateway_block=SCRIPTED, currency="USD",
           authorization_status=PaymentStatus.PROCESSED):
    """An order (make_order) plus authorizations on its first payment summary, in the
    order given (oldest first). Returns the fixture and the authorization ids."""
    with session_scope(store) as s:
        order = make_order(s, payments=[list(p) if not isinstance(p, str) else p for p in payments],
                           invoices=list(invoices), gateway_block=gateway_block, currency=currency)
        authorization_ids = []
        for amount in authorizations:
            authorization = create_payment_authorization(session=s, obj_in=PaymentAuthorizationCreate(
                order_payment_summary_id=order.summaries[0], payment_gateway_id=order.gateway_id, amount=D(amount),
                status=authorization_status))
            s.flush()
            authorization_ids.append(authorization.id)
    return order, authorization_ids


def _run(order, invoice_id, operation_id=None):
    return run_action(order.order_summary_id, EnsureFundsInput(invoice_id=invoice_id), operation_id or str(uuid.uuid4()))


def _get(store, model, record_id):
    with session_scope(store) as s:
        return s.get(model, record_id)


def _applications(store, invoice_id):
    """(payment id, amount, type, operation id) of the invoice's PaymentLineInvoice rows."""
    with session_scope(store) as s:
        rows = s.exec(select(PaymentLineInvoice).where(PaymentLineInvoice.invoice_id == invoice_id)).all()
    return sorted(((r.payment_id, r.amount, r.type, r.background_operation_id) for r in rows), key=lambda r: (r[1], r[0]))


def _captures_of(store, authorization_id):
    with session_scope(store) as s:
        return list(s.exec(select(Payment).where(Payment.payment_authorization_id == authorization_id)))


def _log(store, payment_id):
    with session_scope(store) as s:
        return s.exec(select(PaymentGatewayLog).where(PaymentGatewayLog.reference_entity_id == payment_id)).one()


def _booked(store, payment_id):
    """The sandbox's books for the capture of this payment (one row per key, if any)."""
    with session_scope(store) as s:
        return list(s.exec(select(SandboxGatewayCapture).where(SandboxGatewayCapture.idempotency_key == f"om-capture-{payment_id}")))


def _exceptions(store, order_summary_id):
    with session_scope(store) as s:
        return list(s.exec(select(ProcessException).where(ProcessException.order_summary_id == order_summary_id)))


def _amounts(store, model, record_id):
    """(captured, pending capture) of an authorization or payment summary."""
    record = _get(store, model, record_id)
    return record.captured_amount, record.pending_capture_amount


def _nothing_sent(store, order):
    with session_scope(store) as s:
        assert s.exec(select(PaymentGatewayLog).where(PaymentGatewayLog.payment_gateway_id == order.gateway_id)).all() == []
        assert s.exec(select(Payment).where(Payment.payment_authorization_id.is_not(None))
                      .where(Payment.payment_gateway_id == order.gateway_id)).all() == []


# --- 1. captured balance ---------------------------------------------------------------


def test_invoice_paid_from_captured_balance_prefers_the_exact_match(store):
    order, (authorization,) = _order(store, payments=[["60.00", "25.00"]], authorizations=["100.00"], invoices=["25.00"])
    sixty, twenty_five = order.payments[order.summaries[0]]
    invoice, operation = order.invoice_ids[0], str(uuid.uuid4())
    out = _run(order, invoice, operation)

    assert [(a.payment_id, a.amount, a.type) for a in out.applications] == [(twenty_five, D("25.00"), APPLIED)]
    assert out.captures == [] and out.process_exception_ids == [] and out.invoice_balance == D("0.00")
    assert _get(store, Invoice, invoice).balance == D("0")
    assert _applications(store, invoice) == [(twenty_five, D("25.00"), APPLIED, operation)]
    assert (_get(store, Payment, twenty_five).applied_amount, _get(store, Payment, twenty_five).status) == (
        D("25.00"), PaymentStatus.PROCESSED)
    assert _get(store, Payment, sixty).applied_amount == D("0")
    assert _amounts(store, PaymentAuthorization, authorization) == (D("0"), D("0"))
    assert _amounts(store, OrderPaymentSummary, order.summaries[0]) == (D("85.00"), D("0"))
    assert _captures_of(store, authorization) == []
    _nothing_sent(store, order)
    assert _exceptions(store, order.order_summary_id) == []
    assert_ledger_invariants(store)


def test_captured_balance_spread_largest_first(store):
    """No exact match for 70.00: the largest (60.00) first, then 10.00 of the 25.00."""
    order, (authorization,) = _order(store, payments=[["25.00", "60.00"]], authorizations=["100.00"], invoices=["70.00"])
    twenty_five, sixty = order.payments[order.summaries[0]]
    invoice, operation = order.invoice_ids[0], str(uuid.uuid4())
    out = _run(order, invoice, operation)

    assert sorted((a.payment_id, a.amount) for a in out.applications) == sorted([(sixty, D("60.00")), (twenty_five, D("10.00"))])
    assert _applications(store, invoice) == [(twenty_five, D("10.00"), APPLIED, operation), (sixty, D("60.00"), APPLIED, operation)]
    assert _get(store, Payment, sixty).applied_amount == D("60.00")
    assert _get(store, Payment, twenty_five).applied_amount == D("10.00")
    assert _get(store, Invoice, invoice).balance == D("0")
    assert _captures_of(store, authorization) == []
    _nothing_sent(store, order)
    assert_ledger_invariants(store)


# --- 2. capture ------------------------------------------------------------------------


def test_invoice_paid_by_capturing_an_authorization(store):
    order, (large, exact) = _order(store, authorizations=["100.00", "40.00"], invoices=["40.00"])
    invoice, operation = order.invoice_ids[0], str(uuid.uuid4())
    out = _run(order, invoice, operation)

    (capture,) = _captures_of(store, exact)
    assert _captures_of(store, large) == []
    assert [(c.payment_id, c.payment_authorization_id, c.amount, c.status) for c in out.captures] == [
        (capture.id, exact, D("40.00"), PaymentStatus.PROCESSED)]
    assert [(a.payment_id, a.amount, a.type) for a in out.applications] == [(capture.id, D("40.00"), APPLIED)]
    assert out.invoice_balance == D("0.00") and out.process_exception_ids == []

    assert (capture.type, capture.status, capture.amount, capture.applied_amount) == (
        "Capture", PaymentStatus.PROCESSED, D("40.00"), D("40.00"))
    assert (capture.order_payment_summary_id, capture.payment_gateway_id, capture.currency_iso_code) == (
        order.summaries[0], order.gateway_id, "USD")
    assert capture.gateway_ref_number and capture.gateway_ref_number.startswith("ch_sbx_")
    assert _applications(store, invoice) == [(capture.id, D("40.00"), APPLIED, operation)]
    assert _get(store, Invoice, invoice).balance == D("0")
    assert _amounts(store, PaymentAuthorization, exact) == (D("40.00"), D("0"))
    assert _amounts(store, PaymentAuthorization, large) == (D("0"), D("0"))
    ops = _get(store, OrderPaymentSummary, order.summaries[0])
    assert (ops.captured_amount, ops.pending_capture_amount, ops.authorization_amount) == (D("40.00"), D("0"), D("140.00"))

    log = _log(store, capture.id)
    assert (log.interaction_type, log.interaction_status, log.sf_result_code) == (
        InteractionType.CAPTURE, InteractionStatus.SUCCESS, "Success")
    assert (log.sf_ref_number, log.gateway_ref_number, log.background_operation_id) == (
        f"om-capture-{capture.id}", capture.gateway_ref_number, operation)
    (booked,) = _booked(store, capture.id)
    authorization = _get(store, PaymentAuthorization, exact)
    assert (booked.amount, booked.outcome, booked.charge_reference, booked.gateway_reference) == (
        D("40.00"), "approve", authorization.gateway_ref_number, capture.gateway_ref_number)
    assert _exceptions(store, order.order_summary_id) == []
    assert_ledger_invariants(store)


# --- 3. mixed --------------------------------------------------------------------------


def test_captured_balance_applied_first_then_the_rest_captured(store):
    """Invoice 50.00, 30.00 captured: 30.00 applied, the other 20.00 captured from the
    authorization that matches it exactly (not the larger one)."""
    order, (large, exact) = _order(store, payments=[["30.00"]], authorizations=["100.00", "20.00"], invoices=["50.00"])
    (paid,) = order.payments[order.summaries[0]]
    invoice, operation = order.invoice_ids[0], str(uuid.uuid4())
    out = _run(order, invoice, operation)

    (capture,) = _captures_of(store, exact)
    assert _captures_of(store, large) == []
    assert sorted((a.payment_id, a.amount, a.type) for a in out.applications) == sorted([
        (paid, D("30.00"), APPLIED), (capture.id, D("20.00"), APPLIED)])
    assert [(c.payment_id, c.amount, c.status) for c in out.captures] == [(capture.id, D("20.00"), PaymentStatus.PROCESSED)]
    assert out.invoice_balance == D("0.00")
    assert _applications(store, invoice) == [(capture.id, D("20.00"), APPLIED, operation), (paid, D("30.00"), APPLIED, operation)]
    assert _get(store, Payment, paid).applied_amount == D("30.00")
    assert (capture.status, capture.amount, capture.applied_amount) == (PaymentStatus.PROCESSED, D("20.00"), D("20.00"))
    assert _get(store, Invoice, invoice).balance == D("0")
    assert _amounts(store, PaymentAuthorization, exact) == (D("20.00"), D("0"))
    assert _amounts(store, PaymentAuthorization, large) == (D("0"), D("0"))
    assert _amounts(store, OrderPaymentSummary, order.summaries[0]) == (D("50.00"), D("0"))
    assert _log(store, capture.id).interaction_status == InteractionStatus.SUCCESS
    assert [b.amount for b in _booked(store, capture.id)] == [D("20.00")]
    assert_ledger_invariants(store)


# --- 4. declined / failed capture ------------------------------------------------------


@pytest.mark.parametrize("amount, outcome, sf_result_code, result_code", [
    (DECLINE, "decline", "Decline", "card_declined"),
    (ERROR, "error", "SystemError", "processing_error"),
])
def test_failed_capture_cancels_the_payment_and_releases_the_holds(store, amount, outcome, sf_result_code, result_code):
    """Invoice 10.00 + the scripted amount: 10.00 applied from the captured balance, the
    scripted amount's capture fails; the invoice owes exactly that amount again."""
    total = str(D(amount) + D("10.00"))
    order, (authorization,) = _order(store, payments=[["10.00"]], authorizations=["100.00"], invoices=[total])
    (paid,) = order.payments[order.summaries[0]]
    invoice, operation = order.invoice_ids[0], str(uuid.uuid4())
    out = _run(order, invoice, operation)  # returns normally

    (capture,) = _captures_of(store, authorization)
    assert [(c.payment_id, c.amount, c.status) for c in out.captures] == [(capture.id, D(amount), PaymentStatus.CANCELED)]
    assert out.invoice_balance == D(amount)
    assert (capture.status, capture.applied_amount, capture.gateway_ref_number) == (PaymentStatus.CANCELED, D("0"), None)
    assert _applications(store, invoice) == [(paid, D("10.00"), APPLIED, operation), (capture.id, D(amount), UNAPPLIED, operation)]
    assert _get(store, Payment, paid).applied_amount == D("10.00")
    assert _get(store, Invoice, invoice).balance == D(amount)
    assert _amounts(store, PaymentAuthorization, authorization) == (D("0"), D("0"))
    assert _get(store, PaymentAuthorization, authorization).capturable_amount == D("100.00")
    assert _amounts(store, OrderPaymentSummary, order.summaries[0]) == (D("10.00"), D("0"))

    (exception,) = _exceptions(store, order.order_summary_id)
    assert out.process_exception_ids == [exception.id]
    assert (exception.attached_to_id, exception.background_operation_id, exception.status) == (capture.id, operation, "New")
    assert result_code in exception.message and f"{amount} USD" in exception.message
    log = _log(store, capture.id)
    assert (log.interaction_type, log.interaction_status, log.sf_result_code, log.gateway_result_code) == (
        InteractionType.CAPTURE, InteractionStatus.FAILED, sf_result_code, result_code)
    (booked,) = _booked(store, capture.id)
    assert (booked.amount, booked.outcome, booked.gateway_reference) == (D(amount), outcome, None)
    assert_ledger_invariants(store)


def test_declined_capture_reports_the_gateways_result_code(store):
    order, _ = _order(store, authorizations=["100.00"], invoices=[DECLINE])
    out = _run(order, order.invoice_ids[0])
    assert [(c.status, c.gateway_result_code) for c in out.captures] == [(PaymentStatus.CANCELED, "card_declined")]


def test_unloadable_gateway_block_fails_the_capture_not_the_operation(store):
    order, (authorization,) = _order(store, authorizations=["100.00"], invoices=["12.00"],
                                     gateway_block=f"no-such-block-{uuid.uuid4().hex[:8]}")
    invoice = order.invoice_ids[0]
    out = _run(order, invoice)

    (capture,) = _captures_of(store, authorization)
    assert capture.status == PaymentStatus.CANCELED and out.invoice_balance == D("12.00")
    assert _get(store, Invoice, invoice).balance == D("12.00")
    assert _amounts(store, PaymentAuthorization, authorization) == (D("0"), D("0"))
    assert _amounts(store, OrderPaymentSummary, order.summaries[0]) == (D("0"), D("0"))
    assert [a[2] for a in _applications(store, invoice)] == [UNAPPLIED]
    log = _log(store, capture.id)
    assert (log.interaction_status, log.gateway_result_code) == (InteractionStatus.FAILED, "gateway_configuration_error")
    assert _booked(store, capture.id) == []
    assert len(_exceptions(store, order.order_summary_id)) == 1
    assert_ledger_invariants(store)


def test_zero_decimal_currency(store):
    """JPY has no minor unit: 1000 applied, 2000 captured, amounts exact."""
    order, (authorization,) = _order(store, payments=[["1000"]], authorizations=["5000"], invoices=["3000"], currency="JPY")
    (paid,) = order.payments[order.summaries[0]]
    invoice, operation = order.invoice_ids[0], str(uuid.uuid4())
    out = _run(order, invoice, operation)

    (capture,) = _captures_of(store, authorization)
    assert out.currency_iso_code == "JPY" and out.invoice_balance == D("0")
    assert [(c.amount, c.status) for c in out.captures] == [(D("2000"), PaymentStatus.PROCESSED)]
    assert (capture.amount, capture.currency_iso_code) == (D("2000"), "JPY")
    assert _applications(store, invoice) == [(paid, D("1000"), APPLIED, operation), (capture.id, D("2000"), APPLIED, operation)]
    assert _amounts(store, PaymentAuthorization, authorization) == (D("2000"), D("0"))
    assert _amounts(store, OrderPaymentSummary, order.summaries[0]) == (D("3000"), D("0"))
    assert [(b.amount, b.currency) for b in _booked(store, capture.id)] == [(D("2000"), "JPY")]
    assert_ledger_invariants(store)


# --- 5. timeout ------------------------------------------------------------------------


def test_capture_timeout_keeps_everything_held(store):
    order, (authorization,) = _order(store, authorizations=["100.00"], invoices=[TIMEOUT])
    invoice, operation = order.invoice_ids[0], str(uuid.uuid4())
    out = _run(order, invoice, operation)

    (capture,) = _captures_of(store, authorization)
    assert [(c.payment_id, c.amount, c.status) for c in out.captures] == [(capture.id, D(TIMEOUT), PaymentStatus.DRAFT)]
    assert out.invoice_balance == D("0.00")
    assert (capture.status, capture.applied_amount, capture.gateway_ref_number) == (PaymentStatus.DRAFT, D("0"), None)
    assert _applications(store, invoice) == [(capture.id, D(TIMEOUT), PENDING, operation)]
    assert _get(store, Invoice, invoice).balance == D("0")  # stays reduced while the outcome is unknown
    assert _amounts(store, PaymentAuthorization, authorization) == (D("0"), D(TIMEOUT))
    assert _amounts(store, OrderPaymentSummary, order.summaries[0]) == (D("0"), D(TIMEOUT))
    log = _log(store, capture.id)
    assert (log.interaction_type, log.interaction_status, log.sf_result_code) == (
        InteractionType.CAPTURE, InteractionStatus.TIMEOUT, "Indeterminate")
    (booked,) = _booked(store, capture.id)  # the gateway did act
    assert (booked.amount, booked.outcome) == (D(TIMEOUT), "approve")
    (exception,) = _exceptions(store, order.order_summary_id)
    assert out.process_exception_ids == [exception.id] and exception.attached_to_id == capture.id
    assert "unknown" in exception.message
    assert_ledger_invariants(store)


# --- 6. invalid requests ---------------------------------------------------------------


@pytest.mark.parametrize("case", ["unknown-invoice", "foreign-invoice", "paid-invoice", "insufficient-funds"])
def test_invalid_requests_change_nothing(store, case):
    order, _ = _order(store, payments=[["30.00"]], authorizations=["20.00"], invoices=["10.00", "60.00"])
    other, _ = _order(store, payments=[["100.00"]], invoices=["5.00"])
    small, large = order.invoice_ids
    if case == "paid-invoice":
        assert _run(order, small).invoice_balance == D("0.00")
        assert _get(store, Invoice, small).balance == D("0")
    invoice_id, error = {
        "unknown-invoice": (new_id("Invoice"), NotFoundError),
        "foreign-invoice": (other.invoice_ids[0], InvalidInputError),
        "paid-invoice": (small, InvalidInputError),
        "insufficient-funds": (large, InsufficientFundsError),  # 30.00 + 20.00 < 60.00
    }[case]
    before = snapshot(store)
    with pytest.raises(InvalidInputError) as refused:
        _run(order, invoice_id)
    assert type(refused.value) is error
    if error is InsufficientFundsError:
        assert refused.value.error_code == "INSUFFICIENT_FUNDS"
    assert snapshot(store) == before
    assert_ledger_invariants(store)


def test_unprocessed_authorizations_are_not_funds(store):
    """A Canceled authorization can capture nothing: 30.00 captured cannot pay 50.00."""
    order, _ = _order(store, payments=[["30.00"]], authorizations=["100.00"], invoices=["50.00"],
                      authorization_status=PaymentStatus.CANCELED)
    before = snapshot(store)
    with pytest.raises(InsufficientFundsError):
        _run(order, order.invoice_ids[0])
    assert snapshot(store) == before
    assert_ledger_invariants(store)


# --- 7. re-runs of one operation ---------------------------------------------------------


def test_rerunning_an_operation_finishes_without_capturing_twice(store):
    order, (authorization,) = _order(store, payments=[["15.00"]], authorizations=["100.00"], invoices=["55.00"])
    invoice, operation = order.invoice_ids[0], str(uuid.uuid4())
    first = _run(order, invoice, operation)
    again = _run(order, invoice, operation)

    (capture,) = _captures_of(store, authorization)
    assert again.applications == first.applications and again.captures == first.captures
    assert [(c.payment_id, c.amount, c.status) for c in again.captures] == [(capture.id, D("40.00"), PaymentStatus.PROCESSED)]
    assert again.invoice_balance == D("0.00") and again.process_exception_ids == []
    assert len(_booked(store, capture.id)) == 1
    with session_scope(store) as s:
        logs = s.exec(select(PaymentGatewayLog).where(PaymentGatewayLog.background_operation_id == operation)).all()
    assert len(logs) == 1
    assert len(_applications(store, invoice)) == 2
    assert _get(store, Payment, order.payments[order.summaries[0]][0]).applied_amount == D("15.00")
    assert _amounts(store, PaymentAuthorization, authorization) == (D("40.00"), D("0"))
    assert _amounts(store, OrderPaymentSummary, order.summaries[0]) == (D("55.00"), D("0"))
    assert_ledger_invariants(store)


def test_rerun_after_a_timeout_settles_from_the_gateways_record(store):
    """The gateway booked the capture but the answer was lost; the re-run asks it first
    and settles the capture as approved, without booking it again."""
    order, (authorization,) = _order(store, authorizations=["100.00"], invoices=[TIMEOUT])
    invoice, operation = order.invoice_ids[0], str(uuid.uuid4())
    _run(order, invoice, operation)
    out = _run(order, invoice, operation)

    (capture,) = _captures_of(store, authorization)
    assert [(c.payment_id, c.status) for c in out.captures] == [(capture.id, PaymentStatus.PROCESSED)]
    assert (capture.applied_amount, capture.gateway_ref_number) == (D(TIMEOUT), _booked(store, capture.id)[0].gateway_reference)
    assert len(_booked(store, capture.id)) == 1
    assert _applications(store, invoice) == [(capture.id, D(TIMEOUT), APPLIED, operation)]
    assert _amounts(store, PaymentAuthorization, authorization) == (D(TIMEOUT), D("0"))
    assert _amounts(store, OrderPaymentSummary, order.summaries[0]) == (D(TIMEOUT), D("0"))
    assert _log(store, capture.id).interaction_status == InteractionStatus.SUCCESS
    assert_ledger_invariants(store)


@pytest.mark.parametrize("gateway_acted_before_crash", [True, False])
def test_resumed_operation_captures_once_even_if_the_gateway_ignores_keys(store, gateway_acted_before_crash):
    """The run crashed after reserving (and maybe after the gateway acted); the re-run
    asks the gateway first, so even a gateway that ignores idempotency keys captures once."""
    from actions.ensure_funds import reserve_funds, submit_capture
    from db.models import PaymentGateway
    from gateways.registry import adapter_for

    order, (authorization,) = _order(store, authorizations=["100.00"], invoices=["33.00"], gateway_block=FORGETFUL)
    invoice, operation = order.invoice_ids[0], str(uuid.uuid4())
    request = EnsureFundsInput(invoice_id=invoice)
    with session_scope(store) as s:
        (capture,) = reserve_funds(session=s, order_summary_id=order.order_summary_id, request=request, operation_id=operation)
    if gateway_acted_before_crash:
        with session_scope(store) as s:
            adapter = adapter_for(s.get(PaymentGateway, capture.payment_gateway_id))
            reference = s.get(PaymentAuthorization, authorization).gateway_ref_number

        @flow
        def crashing_first_attempt():
            return submit_capture(capture, adapter, reference)

        crashing_first_attempt()

    out = run_action(order.order_summary_id, request, operation)
    assert [(c.payment_id, c.status) for c in out.captures] == [(capture.id, PaymentStatus.PROCESSED)]
    assert len(_booked(store, capture.id)) == 1
    assert _get(store, Invoice, invoice).balance == D("0")
    assert _amounts(store, PaymentAuthorization, authorization) == (D("33.00"), D("0"))
    assert_ledger_invariants(store)


# --- 8. concurrency --------------------------------------------------------------------


def test_concurrent_operations_never_spend_the_same_funds_twice(store):
    """Two invoices of 60.00 race for 50.00 captured + 50.00 authorized: one is refused."""
    order, (authorization,) = _order(store, payments=[["50.00"]], authorizations=["50.00"], invoices=["60.00", "60.00"])
    outcomes: dict[str, object] = {}

    def attempt(invoice_id):
        try:
            outcomes[invoice_id] = _run(order, invoice_id)
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            outcomes[invoice_id] = exc

    threads = [threading.Thread(target=attempt, args=(i,)) for i in order.invoice_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(outcomes) == 2
    refused = [i for i, o in outcomes.items() if isinstance(o, InsufficientFundsError)]
    done = [i for i, o in outcomes.items() if not isinstance(o, Exception)]
    assert len(refused) == 1 and len(done) == 1, outcomes
    paid, unpaid = done[0], refused[0]
    assert outcomes[paid].invoice_balance == D("0.00")
    assert _get(store, Invoice, paid).balance == D("0")
    assert _get(store, Invoice, unpaid).balance == D("60.00")
    assert _applications(store, unpaid) == []
    assert [(a[1], a[2]) for a in _applications(store, paid)] == [(D("10.00"), APPLIED), (D("50.00"), APPLIED)]
    assert _amounts(store, PaymentAuthorization, authorization) == (D("10.00"), D("0"))
    assert _amounts(store, OrderPaymentSummary, order.summaries[0]) == (D("60.00"), D("0"))
    assert_ledger_invariants(store)


def test_concurrent_operations_within_the_funds_both_succeed(store):
    order, (authorization,) = _order(store, payments=[["30.00"]], authorizations=["70.00"], invoices=["45.00", "55.00"])
    outcomes: dict[str, object] = {}

    def attempt(invoice_id):
        try:
            outcomes[invoice_id] = _run(order, invoice_id)
        except Exception as exc:  # noqa: BLE001
            outcomes[invoice_id] = exc

    threads = [threading.Thread(target=attempt, args=(i,)) for i in order.invoice_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(not isinstance(o, Exception) for o in outcomes.values()) and len(outcomes) == 2, outcomes
    assert [_get(store, Invoice, i).balance for i in order.invoice_ids] == [D("0"), D("0")]
    assert _amounts(store, PaymentAuthorization, authorization) == (D("70.00"), D("0"))
    assert _amounts(store, OrderPaymentSummary, order.summaries[0]) == (D("100.00"), D("0"))
    assert_ledger_invariants(store)


def test_an_expired_authorization_holds_no_funds(store):
    from datetime import timedelta

    from db.types import utcnow

    order, (authorization,) = _order(store, authorizations=["100.00"], invoices=["50.00"])
    with session_scope(store) as s:
        s.get(PaymentAuthorization, authorization).expiration_date = utcnow() - timedelta(minutes=1)
    before = snapshot(store)
    with pytest.raises(InsufficientFundsError):
        _run(order, order.invoice_ids[0])
    assert snapshot(store) == before


def test_a_pending_capture_does_not_make_refunds_fail_after_acceptance(store):
    """AvailableToRefund counts a pending capture (DESIGN §3) but it cannot be refunded yet:
    the plan sends the refund to money that can go back now."""
    from actions.ensure_refunds import EnsureRefundsInput, check_ensure_refunds, ensure_refunds

    with session_scope(store) as s:
        order = make_order(s, payments=["60.00", "40.00"], invoices=[str(D("100.00") + D(TIMEOUT))], gateway_block=SCRIPTED)
        create_payment_authorization(session=s, obj_in=PaymentAuthorizationCreate(
            order_payment_summary_id=order.summaries[1], payment_gateway_id=order.gateway_id, amount=D("200.00")))
    # 100.00 captured balance pays part of the invoice; the rest is a capture that times out (stays pending).
    _run(order, order.invoice_ids[0])

    @flow
    def refund_excess():
        return ensure_refunds(order.order_summary_id, EnsureRefundsInput(excess_funds_amount=D("50.00")), str(uuid.uuid4()))

    with session_scope(store) as s:
        check_ensure_refunds(session=s, order_summary_id=order.order_summary_id,
                             request=EnsureRefundsInput(excess_funds_amount=D("50.00")))
    out = refund_excess()
    assert out.refunded_amount == D("50.00")
    assert_ledger_invariants(store)


def test_the_resolver_settles_a_timed_out_capture_from_the_gateways_record(store):
    """The capture timed out after the gateway acted: the resolver asks, finds it booked,
    and settles it Processed and applied, with one booking at the gateway."""
    from flows.resolve_gateway_outcomes import resolve_gateway_outcomes

    order, (authorization,) = _order(store, authorizations=["100.00"], invoices=[TIMEOUT])
    out = _run(order, order.invoice_ids[0])
    (capture,) = out.captures
    assert capture.status == PaymentStatus.DRAFT
    summary = resolve_gateway_outcomes(older_than_seconds=0)
    assert summary.captures.resolved.get("Processed", 0) >= 1
    payment = _get(store, Payment, capture.payment_id)
    assert payment.status == PaymentStatus.PROCESSED and payment.applied_amount == D(TIMEOUT)
    held = _get(store, PaymentAuthorization, authorization)
    assert (held.captured_amount, held.pending_capture_amount) == (D(TIMEOUT), D("0"))
    assert [row.type for row in _rows_of(store, PaymentLineInvoice, payment_id=capture.payment_id)] == [
        PaymentApplicationType.APPLIED]
    with session_scope(store) as s:
        booked = s.exec(select(SandboxGatewayCapture).where(
            SandboxGatewayCapture.idempotency_key == f"om-capture-{capture.payment_id}")).all()
    assert len(booked) == 1
    assert_ledger_invariants(store)


def _rows_of(store, model, **where):
    with session_scope(store) as s:
        statement = select(model)
        for field, value in where.items():
            statement = statement.where(getattr(model, field) == value)
        return list(s.exec(statement))
