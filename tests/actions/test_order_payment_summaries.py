"""Create Order Payment Summary (Connect, 48.0) from payments or an authorization created
without a summary: the refusals write nothing; until linked, a record is invisible to
refunds and captures."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
from prefect import flow

from actions.ensure_refunds import EnsureRefundsInput, ensure_refunds
from actions.order_payment_summaries import CreateOrderPaymentSummaryInput, create_order_payment_summary_from
from actions.payment_refunds import RefundPaymentInput, payment_refundability, reserve_payment_refund
from blocks import SandboxGateway
from db.engine import session_scope
from db.models import OrderPaymentSummary, Payment, PaymentAuthorization, RefundStatus
from db.sobjects import create_sobject
from domain.errors import InsufficientAvailableToRefundError, InvalidInputError, NotRefundableError, RequiredFieldMissingError
from tests.factories import make_order
from tests.ledger import assert_ledger_invariants, snapshot

GATEWAY = "test-create-ops-gateway"


@pytest.fixture(scope="module", autouse=True)
def sandbox(prefect_api):
    SandboxGateway().save(GATEWAY, overwrite=True)


@flow(name="test-create-ops-ensure-refunds")
def run_refunds(order_summary_id: str, request: EnsureRefundsInput, operation_id: str):
    return ensure_refunds(order_summary_id, request, operation_id)


def _unlinked(store, gateway_id, object_name="Payment", currency="USD", **fields):
    with session_scope(store) as s:
        return create_sobject(session=s, object_name=object_name, fields={
            "PaymentGatewayId": gateway_id, "CurrencyIsoCode": currency, **fields}).id


def _create(store, **request):
    with session_scope(store) as s:
        return create_order_payment_summary_from(
            session=s, request=CreateOrderPaymentSummaryInput.model_validate(request)).id


def test_payments_made_first_then_their_summary_then_refunded(store):
    with session_scope(store) as s:
        order = make_order(s, payments=["10.00"], credit_memo="50.00", gateway_block=GATEWAY)
    first = _unlinked(store, order.gateway_id, Amount=40)
    second = _unlinked(store, order.gateway_id, Amount=30)
    draft = _unlinked(store, order.gateway_id, Amount=5, Status="Draft")
    with session_scope(store) as s:
        assert s.get(Payment, first).order_payment_summary_id is None
    # Unlinked, they are invisible: the order can refund only its 10.00.
    with pytest.raises(InsufficientAvailableToRefundError), session_scope(store) as s:
        from actions.ensure_refunds import reserve_refunds
        reserve_refunds(session=s, order_summary_id=order.order_summary_id, operation_id=str(uuid.uuid4()),
                        request=EnsureRefundsInput(excess_funds_amount=D("11.00")))
    with session_scope(store) as s:
        assert payment_refundability(session=s, charge_id=first).non_refundable_reason == "NOT_IN_ORDER_PAYMENT_SUMMARY"
    with pytest.raises(NotRefundableError), session_scope(store) as s:
        reserve_payment_refund(session=s, request=RefundPaymentInput(charge_id=first))
    assert_ledger_invariants(store)

    summary = _create(store, orderSummaryId=order.order_summary_id, paymentIds=[first, second, draft])

    with session_scope(store) as s:
        ops = s.get(OrderPaymentSummary, summary)
        assert (ops.order_summary_id, ops.currency_iso_code, ops.method) == (order.order_summary_id, "USD", "Card")
        assert (ops.captured_amount, ops.authorization_amount) == (D("70.00"), D("0"))  # the Draft one is not captured
        assert {s.get(Payment, p).order_payment_summary_id for p in (first, second, draft)} == {summary}
    out = run_refunds(order.order_summary_id, EnsureRefundsInput(credit_memo_id=order.credit_memo_id), str(uuid.uuid4()))
    assert {(r.order_payment_summary_id, r.status) for r in out.refunds} == {(summary, RefundStatus.PROCESSED)}
    with session_scope(store) as s:
        assert s.get(OrderPaymentSummary, summary).refunded_amount == D("50.00")
    assert_ledger_invariants(store)


def test_an_authorization_made_first_becomes_a_summarys_authorized_amount(store):
    with session_scope(store) as s:
        order = make_order(s, payments=[], gateway_block=GATEWAY)
    authorization = _unlinked(store, order.gateway_id, "PaymentAuthorization", Amount=25)
    summary = _create(store, orderSummaryId=order.order_summary_id, paymentAuthorizationId=authorization, name="Visa 4242")
    with session_scope(store) as s:
        ops = s.get(OrderPaymentSummary, summary)
        assert (ops.authorization_amount, ops.captured_amount, ops.method) == (D("25.00"), D("0"), "Visa 4242")
        assert s.get(PaymentAuthorization, authorization).order_payment_summary_id == summary
    assert_ledger_invariants(store)


def _refusals(store):
    with session_scope(store) as s:
        order = make_order(s, payments=["10.00"], gateway_block=GATEWAY)
    linked = order.payments[order.summaries[0]][0]
    card = _unlinked(store, order.gateway_id, Amount=5)
    debit = _unlinked(store, order.gateway_id, Amount=5, PaymentMethodType="DirectDebit")
    euro = _unlinked(store, order.gateway_id, currency="EUR", Amount=5)
    authorization = _unlinked(store, order.gateway_id, "PaymentAuthorization", Amount=5)
    o = order.order_summary_id
    return [
        ({"orderSummaryId": o, "paymentIds": [card, "0a3AAAAAAAAAAAAAAA"]}, "INVALID_ID_FIELD"),
        ({"orderSummaryId": o, "paymentIds": [card, linked]}, "INVALID_INPUT"),
        ({"orderSummaryId": o, "paymentIds": [card, card]}, "INVALID_INPUT"),
        ({"orderSummaryId": o, "paymentIds": [card, euro]}, "CURRENCY_MISMATCH"),
        ({"orderSummaryId": o, "paymentIds": [card, debit]}, "INVALID_INPUT"),
        ({"orderSummaryId": o, "paymentAuthorizationId": card}, "INVALID_ID_FIELD"),  # a payment is no authorization
        ({"orderSummaryId": o, "paymentAuthorizationId": authorization, "paymentIds": [card]}, None),
        ({"orderSummaryId": o}, None),
        ({"orderSummaryId": o, "paymentIds": []}, None),
    ]


def test_every_refusal_writes_nothing(store):
    for request, code in _refusals(store):
        before = snapshot(store)
        with pytest.raises((InvalidInputError, ValueError)) as refused, session_scope(store) as s:
            create_order_payment_summary_from(session=s, request=CreateOrderPaymentSummaryInput.model_validate(request))
        if code is not None:
            assert refused.value.error_code == code, request
        assert snapshot(store) == before, request


def test_a_record_without_a_summary_needs_its_currency(store):
    with session_scope(store) as s:
        order = make_order(s, payments=[[]], gateway_block=GATEWAY, currency="EUR")
    before = snapshot(store)
    with pytest.raises(RequiredFieldMissingError) as refused, session_scope(store) as s:
        create_sobject(session=s, object_name="Payment", fields={"PaymentGatewayId": order.gateway_id, "Amount": 1})
    assert refused.value.fields == ["OrderPaymentSummaryId"]
    with pytest.raises(InvalidInputError) as refused, session_scope(store) as s:
        create_sobject(session=s, object_name="Payment", fields={
            "OrderPaymentSummaryId": order.summaries[0], "PaymentGatewayId": order.gateway_id, "Amount": 1,
            "CurrencyIsoCode": "USD"})
    assert refused.value.error_code == "CURRENCY_MISMATCH"
    assert snapshot(store) == before
