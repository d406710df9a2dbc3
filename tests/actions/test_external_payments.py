"""External payments and authorizations (Salesforce's ProcessingMode, Object Reference v67):
money taken outside the engine, with or without a PaymentGateway. Refunding or capturing them
calls no gateway (gateways/external.py answers Approved, result code External), while the
reservation, the gateway log row and the settlement stay what they are for a gateway."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
from prefect import flow
from sqlmodel import select

from actions.ensure_funds import EnsureFundsInput, ensure_funds
from actions.ensure_refunds import EnsureRefundsInput, ensure_refunds, reserve_refunds
from actions.payment_refunds import RefundPaymentInput, payment_refundability
from actions.resolve_refunds import resolve_refunds
from actions.sweep_credit_memos import SweepCreditMemosInput
from blocks import SandboxGateway
from db.engine import session_scope
from db.models import (
    InteractionStatus, OrderPaymentSummary, OrderPaymentSummaryCreate, Payment, PaymentAuthorization,
    PaymentAuthorizationCreate, PaymentCreate, PaymentGateway, PaymentGatewayLog, PaymentStatus, ProcessException,
    ProcessingMode, Refund, RefundStatus,
)
from db.sobjects import create_order_payment_summary, create_payment, create_payment_authorization, create_sobject, read_sobject
from domain.errors import RequiredFieldMissingError
from gateways import registry
from gateways.contract import GatewayOutcome, RefundCommand
from gateways.external import EXTERNAL_RESULT_CODE, ExternalAdapter
from gateways.sandbox_ledger import SandboxGatewayCapture, SandboxGatewayRefund
from tests.factories import make_order
from tests.ledger import assert_ledger_invariants, snapshot

GATEWAY = "test-external-payments-gateway"
EXTERNAL = ProcessingMode.EXTERNAL


@pytest.fixture(scope="module", autouse=True)
def sandbox(prefect_api):
    SandboxGateway().save(GATEWAY, overwrite=True)


@pytest.fixture
def no_gateway_may_be_built(monkeypatch):
    """Fail any attempt to build a real gateway's adapter: External money calls none."""
    def refuse(gateway, **_):
        raise AssertionError(f"a gateway adapter was built for {gateway.id}")
    monkeypatch.setattr(registry, "adapter_for", refuse)


@flow(name="test-external-ensure-refunds")
def run_refunds(order_summary_id: str, request: EnsureRefundsInput, operation_id: str):
    return ensure_refunds(order_summary_id, request, operation_id)


@flow(name="test-external-ensure-funds")
def run_funds(order_summary_id: str, request: EnsureFundsInput, operation_id: str):
    return ensure_funds(order_summary_id, request, operation_id)


@flow(name="test-external-resolve-refunds")
def run_resolve():
    return resolve_refunds(older_than_seconds=0)


def _books(store):
    with session_scope(store) as s:
        return (len(s.exec(select(SandboxGatewayRefund)).all()), len(s.exec(select(SandboxGatewayCapture)).all()))


def _external_summary(store, order, amount, *, gateway_id=None, authorization=False):
    """A new payment summary on ``order`` holding one External payment (or authorization)."""
    with session_scope(store) as s:
        ops = create_order_payment_summary(session=s, obj_in=OrderPaymentSummaryCreate(
            order_summary_id=order.order_summary_id, method="Bank transfer"))
        s.flush()
        if authorization:
            record = create_payment_authorization(session=s, obj_in=PaymentAuthorizationCreate(
                order_payment_summary_id=ops.id, payment_gateway_id=gateway_id, processing_mode=EXTERNAL, amount=D(amount)))
        else:
            record = create_payment(session=s, obj_in=PaymentCreate(
                order_payment_summary_id=ops.id, payment_gateway_id=gateway_id, processing_mode=EXTERNAL, amount=D(amount)))
        s.flush()
        return ops.id, record.id


def _log_of(store, entity_id):
    with session_scope(store) as s:
        return s.exec(select(PaymentGatewayLog).where(PaymentGatewayLog.reference_entity_id == entity_id)).one()


def test_the_external_adapter_approves_without_calling_anything():
    command = RefundCommand(idempotency_key="om-refund-x", charge_reference="", amount=D("5.00"), currency="USD")
    answer = ExternalAdapter().refund(command)
    assert (answer.outcome, answer.result_code) == (GatewayOutcome.APPROVED, EXTERNAL_RESULT_CODE)
    assert "outside the engine" in answer.message
    assert ExternalAdapter().lookup_refund(command) == answer  # a resumed run settles what it reserved
    assert isinstance(registry.GatewayAdapters().for_gateway(None), ExternalAdapter)


def test_an_external_payment_is_created_without_a_gateway_and_rolls_up(store):
    with session_scope(store) as s:
        order = make_order(s, payments=[[]], gateway_block=GATEWAY)
    with session_scope(store) as s:
        record = create_sobject(session=s, object_name="Payment", fields={
            "OrderPaymentSummaryId": order.summaries[0], "ProcessingMode": "External", "Amount": 12.5})
        read = read_sobject(session=s, object_name="Payment", record_id=record.id)
    assert (read["ProcessingMode"], read["PaymentGatewayId"], read["GatewayRefNumber"]) == ("External", None, None)
    with session_scope(store) as s:
        assert s.get(OrderPaymentSummary, order.summaries[0]).captured_amount == D("12.50")
    assert_ledger_invariants(store)


@pytest.mark.parametrize("object_name", ["Payment", "PaymentAuthorization"])
@pytest.mark.parametrize("mode", [{}, {"ProcessingMode": "Salesforce"}])
def test_a_salesforce_mode_record_without_a_gateway_is_refused_and_writes_nothing(store, object_name, mode):
    with session_scope(store) as s:
        order = make_order(s, payments=[[]], gateway_block=GATEWAY)
    before = snapshot(store)
    with pytest.raises(RequiredFieldMissingError) as refused, session_scope(store) as s:
        create_sobject(session=s, object_name=object_name, fields={
            "OrderPaymentSummaryId": order.summaries[0], "Amount": 10, **mode})
    assert refused.value.fields == ["PaymentGatewayId"]
    assert snapshot(store) == before


def test_ensure_refunds_to_an_external_payment_calls_no_gateway(store, no_gateway_may_be_built):
    with session_scope(store) as s:
        order = make_order(s, payments=["20.00"], credit_memo="30.00", gateway_block=GATEWAY)
    external_ops, external_payment = _external_summary(store, order, "80.00")
    books = _books(store)

    out = run_refunds(order.order_summary_id, EnsureRefundsInput(credit_memo_id=order.credit_memo_id), str(uuid.uuid4()))

    [refund] = out.refunds  # seed 000: the largest summary, the External one
    assert (refund.order_payment_summary_id, refund.payment_id, refund.amount, refund.status) == (
        external_ops, external_payment, D("30.00"), RefundStatus.PROCESSED)
    assert refund.gateway_result_code == EXTERNAL_RESULT_CODE and "outside the engine" in refund.gateway_message
    log = _log_of(store, refund.refund_id)
    assert (log.payment_gateway_id, log.interaction_status, log.gateway_result_code, log.sf_result_code) == (
        None, InteractionStatus.SUCCESS, "External", "Success")
    assert _books(store) == books  # the sandbox booked nothing
    with session_scope(store) as s:
        assert s.get(OrderPaymentSummary, external_ops).refunded_amount == D("30.00")
        read = read_sobject(session=s, object_name="Refund", record_id=refund.refund_id)
        assert (read["ProcessingMode"], read["PaymentGatewayId"], read["SfResultCode"]) == ("External", None, "Success")
        assert s.exec(select(ProcessException).where(ProcessException.order_summary_id == order.order_summary_id)).all() == []
    assert_ledger_invariants(store)


def test_an_external_payment_naming_a_gateway_still_moves_its_money_outside(store, no_gateway_may_be_built):
    """The gateway an External record names is kept for the record; its money moved outside,
    so refunding it calls nothing either."""
    with session_scope(store) as s:
        order = make_order(s, payments=[], credit_memo="15.00", gateway_block=GATEWAY)
    _external_summary(store, order, "50.00", gateway_id=order.gateway_id)
    books = _books(store)
    out = run_refunds(order.order_summary_id, EnsureRefundsInput(credit_memo_id=order.credit_memo_id), str(uuid.uuid4()))
    assert [(r.status, r.gateway_result_code) for r in out.refunds] == [(RefundStatus.PROCESSED, "External")]
    assert _log_of(store, out.refunds[0].refund_id).payment_gateway_id == order.gateway_id
    assert _books(store) == books
    assert_ledger_invariants(store)


def test_a_refund_reserved_before_a_crash_is_settled_by_the_resolver(store, no_gateway_may_be_built):
    with session_scope(store) as s:
        order = make_order(s, payments=[], credit_memo="10.00", gateway_block=GATEWAY)
    _external_summary(store, order, "40.00")
    with session_scope(store) as s:  # the operation died after its reservation, before "sending"
        (reserved,) = reserve_refunds(session=s, order_summary_id=order.order_summary_id, operation_id=str(uuid.uuid4()),
                                      request=EnsureRefundsInput(credit_memo_id=order.credit_memo_id))
        refund_id = reserved.id
    run_resolve()
    with session_scope(store) as s:
        refund = s.get(Refund, refund_id)
        assert (refund.status, refund.gateway_result_code) == (RefundStatus.PROCESSED, "External")
    assert_ledger_invariants(store)


def test_the_gateway_rules_do_not_apply_to_an_external_payment(store):
    """Refund-unsupported methods, an inactive gateway and one refund at a time are the
    gateway's rules: an External payment calls no gateway. The direct-debit rule stays."""
    with session_scope(store) as s:
        order = make_order(s, payments=[[]], gateway_block=GATEWAY)
        gateway = s.get(PaymentGateway, order.gateway_id)
        gateway.status, gateway.one_refund_at_a_time, gateway.refund_unsupported_methods = "Inactive", True, "DigitalWallet"
        wallet = create_payment(session=s, obj_in=PaymentCreate(
            order_payment_summary_id=order.summaries[0], payment_gateway_id=order.gateway_id, processing_mode=EXTERNAL,
            payment_method_type="DigitalWallet", amount=D("9.00"))).id
        debit = create_payment(session=s, obj_in=PaymentCreate(
            order_payment_summary_id=order.summaries[0], processing_mode=EXTERNAL, payment_method_type="DirectDebit",
            amount=D("7.00"))).id
    with session_scope(store) as s:
        assert payment_refundability(session=s, charge_id=wallet).refundable is True
        debit_answer = payment_refundability(session=s, charge_id=debit)
    assert debit_answer.requires_direct_debit_override is True


def test_refund_payment_of_an_external_payment(store, no_gateway_may_be_built):
    from flows.refund_payment import refund_payment

    with session_scope(store) as s:
        order = make_order(s, payments=[], gateway_block=GATEWAY)
    _ops, charge = _external_summary(store, order, "25.00")
    books = _books(store)
    refunded = refund_payment(RefundPaymentInput(charge_id=charge, amount=D("10.00"), reason="returned at the till"))
    assert (refunded.amount, refunded.status, refunded.gateway_result_code) == (D("10.00"), "SUCCEEDED", "External")
    with session_scope(store) as s:
        assert s.get(Payment, charge).refunded_amount == D("10.00")
    assert _books(store) == books
    assert_ledger_invariants(store)


def test_ensure_funds_captures_an_external_authorization_without_a_gateway(store, no_gateway_may_be_built):
    with session_scope(store) as s:
        order = make_order(s, payments=[], invoices=["30.00"], gateway_block=GATEWAY)
    ops, authorization = _external_summary(store, order, "50.00", authorization=True)
    books = _books(store)

    out = run_funds(order.order_summary_id, EnsureFundsInput(invoice_id=order.invoice_ids[0]), str(uuid.uuid4()))

    [capture] = out.captures
    assert (capture.payment_authorization_id, capture.amount, capture.status, capture.gateway_result_code) == (
        authorization, D("30.00"), PaymentStatus.PROCESSED, "External")
    assert out.invoice_balance == D("0.00")
    with session_scope(store) as s:
        payment = s.get(Payment, capture.payment_id)
        assert (payment.processing_mode, payment.payment_gateway_id) == (EXTERNAL, None)
        assert s.get(PaymentAuthorization, authorization).captured_amount == D("30.00")
        assert s.get(OrderPaymentSummary, ops).captured_amount == D("30.00")
    assert _log_of(store, capture.payment_id).payment_gateway_id is None
    assert _books(store) == books
    assert_ledger_invariants(store)


def test_the_sweep_refunds_an_external_payment(store, no_gateway_may_be_built):
    from flows.sweep_credit_memos import sweep_credit_memos

    with session_scope(store) as s:
        order = make_order(s, payments=[], credit_memo="12.00", gateway_block=GATEWAY)
    _external_summary(store, order, "30.00")
    books = _books(store)
    out = sweep_credit_memos(SweepCreditMemosInput(older_than_seconds=0, credit_memo_ids=[order.credit_memo_id]))
    assert (out.swept, out.refunds_by_status) == (1, {"Processed": 1})
    assert _books(store) == books
    assert_ledger_invariants(store)
