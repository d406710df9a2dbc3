"""Ensure Refunds and Ensure Funds through a Stripe PaymentGateway: the real actions,
store and Prefect server, the stripe SDK, and localstripe, which ignores idempotency keys."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
import stripe
from prefect import flow

from actions.ensure_funds import EnsureFundsInput, ensure_funds
from actions.ensure_refunds import EnsureRefundsInput, ensure_refunds, reserve_refunds
from actions.refunds import submit_refund
from blocks import StripeGateway
from db.engine import session_scope
from db.models import (
    CreditMemo, CreditMemoCreate, GatewayProvider, Invoice, InvoiceCreate, OrderPaymentSummary,
    OrderPaymentSummaryCreate, OrderSummaryCreate, Payment, PaymentAuthorization, PaymentAuthorizationCreate, PaymentCreate,
    PaymentGatewayCreate,
    PaymentStatus, Refund, RefundStatus,
)
from db.sobjects import (
    create_credit_memo, create_invoice, create_order_payment_summary, create_order_summary, create_payment,
    create_payment_authorization, create_payment_gateway,
)
from domain.errors import InvalidInputError
from domain.funds import InsufficientFundsError
from gateways.registry import GatewayAdapters
from gateways.stripe import KEY_METADATA
from tests.gateways.test_stripe_adapter import API_KEY, authorization, charge
from tests.ledger import assert_ledger_invariants, snapshot

BLOCK = "test-stripe-account"


@pytest.fixture(scope="module", autouse=True)
def stripe_account(prefect_api, localstripe):
    StripeGateway(api_key=API_KEY, api_base=localstripe, timeout_seconds=10).save(BLOCK, overwrite=True)


@pytest.fixture
def stripe_client(localstripe) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": localstripe}, max_network_retries=0)


@flow(name="test-ensure-refunds-stripe")
def run_action(order_summary_id: str, request: EnsureRefundsInput, operation_id: str):
    return ensure_refunds(order_summary_id, request, operation_id)


def stripe_order(store: str, client: stripe.StripeClient, *, payments: list[str], credit_memo: str | None = None,
                 authorizations: list[str] = (), invoices: list[str] = ()):
    """An order paid by one Stripe charge per amount, through a Stripe PaymentGateway, with
    manual-capture PaymentIntents as its authorizations (on a summary of their own)."""
    charges = [charge(client, int(D(amount) * 100)) for amount in payments]
    with session_scope(store) as session:
        gateway = create_payment_gateway(session=session, obj_in=PaymentGatewayCreate(
            payment_gateway_name="stripe", gateway_provider=GatewayProvider.STRIPE, merchant_credential_name=BLOCK))
        order = create_order_summary(session=session, obj_in=OrderSummaryCreate(order_number="S-1", currency_iso_code="USD"))
        session.flush()
        summaries = []
        for amount, reference in zip(payments, charges, strict=True):
            ops = create_order_payment_summary(session=session, obj_in=OrderPaymentSummaryCreate(order_summary_id=order.id))
            session.flush()
            create_payment(session=session, obj_in=PaymentCreate(
                order_payment_summary_id=ops.id, payment_gateway_id=gateway.id, amount=D(amount),
                gateway_ref_number=reference))
            summaries.append(ops.id)
        if authorizations:
            ops = create_order_payment_summary(session=session, obj_in=OrderPaymentSummaryCreate(order_summary_id=order.id))
            session.flush()
            summaries.append(ops.id)
            for amount in authorizations:
                create_payment_authorization(session=session, obj_in=PaymentAuthorizationCreate(
                    order_payment_summary_id=ops.id, payment_gateway_id=gateway.id, amount=D(amount),
                    gateway_ref_number=authorization(client, int(D(amount) * 100))))
        memo = credit_memo and create_credit_memo(session=session, obj_in=CreditMemoCreate(
            order_summary_id=order.id, total_amount=D(credit_memo))).id
        invoice_ids = [create_invoice(session=session, obj_in=InvoiceCreate(
            order_summary_id=order.id, total_amount=D(amount))).id for amount in invoices]
        session.flush()
        return order.id, summaries, charges, memo or invoice_ids


@flow(name="test-ensure-funds-stripe")
def run_funds(order_summary_id: str, request: EnsureFundsInput, operation_id: str):
    return ensure_funds(order_summary_id, request, operation_id)


def refunds_of(client: stripe.StripeClient, reference: str) -> list[dict]:
    return [r.to_dict() for r in client.v1.refunds.list(params={"charge": reference}).auto_paging_iter()]


def test_credit_memo_refunded_to_the_charge_at_stripe(store, stripe_client):
    order, summaries, charges, memo = stripe_order(store, stripe_client, payments=["60.00", "40.00"], credit_memo="30.00")

    out = run_action(order, EnsureRefundsInput(credit_memo_id=memo), str(uuid.uuid4()))

    (refund,) = out.refunds
    assert (refund.order_payment_summary_id, refund.amount, refund.status) == (summaries[0], D("30.00"), RefundStatus.PROCESSED)
    (at_stripe,) = refunds_of(stripe_client, charges[0])
    assert at_stripe["amount"] == 3000 and at_stripe["metadata"]["refund_id"] == refund.refund_id
    assert refunds_of(stripe_client, charges[1]) == []
    with session_scope(store) as s:
        assert s.get(Refund, refund.refund_id).gateway_ref_number == at_stripe["id"]
        assert s.get(OrderPaymentSummary, summaries[0]).refunded_amount == D("30.00")
        assert s.get(CreditMemo, memo).balance == D("0")
    assert_ledger_invariants(store)


@pytest.mark.parametrize("stripe_acted_before_crash", [True, False])
def test_a_resumed_operation_refunds_once_at_stripe(store, stripe_client, stripe_acted_before_crash):
    """The run reserved the refund and died, perhaps after Stripe acted. localstripe
    ignores idempotency keys, so only looking the refund up by its metadata keeps the
    re-run from refunding twice."""
    order, _summaries, charges, memo = stripe_order(store, stripe_client, payments=["50.00"], credit_memo="20.00")
    operation, request = str(uuid.uuid4()), EnsureRefundsInput(credit_memo_id=memo)
    with session_scope(store) as s:
        (refund,) = reserve_refunds(session=s, order_summary_id=order, request=request, operation_id=operation)
    if stripe_acted_before_crash:
        from db.models import PaymentGateway

        with session_scope(store) as s:
            payment = s.get(Payment, refund.payment_id)
            adapter = GatewayAdapters(store_url=store).for_gateway(s.get(PaymentGateway, payment.payment_gateway_id))

        @flow
        def crashing_first_attempt():
            return submit_refund(refund, adapter, payment.gateway_ref_number)

        assert crashing_first_attempt().gateway_reference.startswith("re_")

    out = run_action(order, request, operation)

    assert [(r.refund_id, r.status) for r in out.refunds] == [(refund.id, RefundStatus.PROCESSED)]
    (at_stripe,) = refunds_of(stripe_client, charges[0])
    assert at_stripe["metadata"][KEY_METADATA] == refund.idempotency_key and at_stripe["amount"] == 2000
    assert_ledger_invariants(store)


def test_a_stripe_gateway_names_its_credentials(store):
    with session_scope(store) as s, pytest.raises(InvalidInputError, match="MerchantCredentialName"):
        create_payment_gateway(session=s, obj_in=PaymentGatewayCreate(
            payment_gateway_name="stripe", gateway_provider=GatewayProvider.STRIPE))


def test_invoice_paid_by_capturing_a_stripe_authorization(store, stripe_client):
    order, _summaries, _charges, (invoice,) = stripe_order(
        store, stripe_client, payments=[], authorizations=["50.00"], invoices=["30.00"])

    out = run_funds(order, EnsureFundsInput(invoice_id=invoice), str(uuid.uuid4()))

    (capture,) = out.captures
    assert (capture.amount, capture.status, out.invoice_balance) == (D("30.00"), PaymentStatus.PROCESSED, D("0.00"))
    with session_scope(store) as s:
        intent = s.get(PaymentAuthorization, capture.payment_authorization_id).gateway_ref_number
        assert s.get(Payment, capture.payment_id).gateway_ref_number == intent
    assert stripe_client.v1.payment_intents.retrieve(intent).status == "succeeded"
    assert_ledger_invariants(store)


def test_a_stripe_authorization_is_captured_once(store, stripe_client):
    """Stripe captures a PaymentIntent once and releases the rest, so once one capture has
    taken 30.00 of 50.00 the next invoice cannot be paid from it: refused, nothing written."""
    order, _summaries, _charges, (first, second) = stripe_order(
        store, stripe_client, payments=[], authorizations=["50.00"], invoices=["30.00", "10.00"])
    assert run_funds(order, EnsureFundsInput(invoice_id=first), str(uuid.uuid4())).invoice_balance == D("0.00")
    before = snapshot(store)

    with pytest.raises(InsufficientFundsError):
        run_funds(order, EnsureFundsInput(invoice_id=second), str(uuid.uuid4()))

    assert snapshot(store) == before
    with session_scope(store) as s:
        assert s.get(Invoice, second).balance == D("10.00")
    assert_ledger_invariants(store)
