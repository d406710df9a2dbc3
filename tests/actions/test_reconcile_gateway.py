"""The reconcile-gateway flow on the real Prefect server, against the sandbox gateway's books,
on both backends, each test on a store of its own (the differences are made on purpose)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from decimal import Decimal as D

import pytest
import stripe
from sqlalchemy import update
from sqlmodel import select

from actions.audit_ledger import find_violations
from actions.ensure_funds import EnsureFundsInput
from actions.reconcile_gateway import ReconcileGatewayInput
from actions.payment_refunds import RefundPaymentInput
from db.engine import session_scope
from db.ids import new_id
from blocks import StripeGateway
from db.models import (
    FindingResolution, FindingStatus, GatewayProvider, InteractionStatus, InteractionType, OrderPaymentSummary,
    OrderPaymentSummaryCreate, Payment, PaymentAuthorizationCreate, PaymentCreate, PaymentGateway, PaymentGatewayLog,
    ProcessingMode, ReconciliationFinding, ReconciliationMatch, Refund, RefundStatus,
)
from db.sobjects import create_order_payment_summary, create_payment, create_payment_authorization
from db.reconciliation import GATEWAY_FUNDING, forget_matches, record_gateway_refund, remember_matches
from db.types import utcnow
from domain.errors import InvalidInputError
from flows.ensure_funds_async import ensure_funds_async
from flows.reconcile_gateway import reconcile_gateway
from flows.refund_payment import refund_payment
from gateways.contract import RefundCommand
from gateways.sandbox import SandboxGatewayAdapter
from gateways.sandbox_ledger import SandboxGatewayRefund
from tests.e2e.test_record_triggered_flows import events_of
from tests.factories import make_order
from tests.gateways.test_stripe_adapter import API_KEY, charge
from tests.ledger import assert_ledger_invariants


def _reconcile(since, **options):
    return reconcile_gateway(ReconcileGatewayInput(window_start=since, window_end=utcnow() + timedelta(seconds=5),
                                                   **options))


def _findings(store) -> dict[str, ReconciliationFinding]:
    with session_scope(store) as s:
        return {f.fingerprint: f for f in s.exec(select(ReconciliationFinding))}


def _difference_events(finding_id: str, *, at_least: int) -> list[dict]:
    return events_of(f"om.reconciliation.{finding_id}", "om.reconciliation.difference", wait_for=at_least, timeout=20)


def _an_order(store, amount="100.00"):
    with session_scope(store) as s:
        order = make_order(s, payments=[amount])
        payment = s.get(Payment, order.payments[order.summaries[0]][0])
        return order, payment


def test_a_refund_made_at_the_gateway_is_recorded_once_and_cannot_be_refunded_again(own_store, prefect_api):
    since = utcnow() - timedelta(seconds=1)
    order, payment = _an_order(own_store)
    refund_payment(RefundPaymentInput(charge_id=payment.id, amount=D("30.00")))
    # Someone refunds 50.00 in the gateway's dashboard: the engine never hears of it.
    outside = SandboxGatewayAdapter().refund(RefundCommand(
        idempotency_key="dashboard-refund-1", charge_reference=payment.gateway_ref_number, amount=D("50.00"), currency="USD"))

    first = _reconcile(since)

    [account] = first.accounts
    assert account.gateway_account == "Sandbox" and len(account.recorded_refund_ids) == 1
    with session_scope(own_store) as s:
        recorded = s.get(Refund, account.recorded_refund_ids[0])
        assert (recorded.status, recorded.amount, recorded.funding_source) == (RefundStatus.PROCESSED, D("50.00"), GATEWAY_FUNDING)
        assert recorded.gateway_ref_number == outside.gateway_reference and recorded.payment_id == payment.id
        assert s.get(Payment, payment.id).refunded_amount == D("80.00")
        assert s.get(OrderPaymentSummary, order.summaries[0]).available_to_refund_amount == D("20.00")
        log = s.exec(select(PaymentGatewayLog).where(PaymentGatewayLog.sf_ref_number == recorded.idempotency_key)).one()
        assert (log.interaction_type, log.interaction_status) == (InteractionType.REFUND, InteractionStatus.SUCCESS)
    [finding] = _findings(own_store).values()
    assert (finding.difference, finding.status, finding.resolution) == ("MissingInStore", FindingStatus.RESOLVED,
                                                                         FindingResolution.RECORDED)
    assert finding.recorded_refund_id == recorded.id and finding.order_summary_id == order.order_summary_id

    # What is left is 20.00: a refund of 30.00 more is refused, nothing is paid out twice.
    with pytest.raises(Exception, match="outside what payment"):
        refund_payment(RefundPaymentInput(charge_id=payment.id, amount=D("30.00")))

    second = _reconcile(since)
    assert second.accounts[0].recorded_refund_ids == [] and second.accounts[0].new_findings == 0
    assert second.accounts[0].differences == {}
    assert len(_findings(own_store)) == 1
    assert_ledger_invariants(own_store)


def test_an_altered_amount_and_a_refund_never_sent_are_each_reported_once_across_two_runs(own_store, prefect_api):
    since = utcnow() - timedelta(seconds=1)
    order, payment = _an_order(own_store)
    sent = refund_payment(RefundPaymentInput(charge_id=payment.id, amount=D("30.00")))
    with session_scope(own_store) as s:  # the gateway's books say 31.00 (altered at the gateway)
        key = s.get(Refund, sent.id).idempotency_key
        s.execute(update(SandboxGatewayRefund).where(SandboxGatewayRefund.idempotency_key == key).values(amount=D("31.00")))
    with session_scope(own_store) as s:  # a refund row that says it moved money, whose gateway call never happened
        phantom = Refund(id=new_id("Refund"), order_payment_summary_id=order.summaries[0], payment_id=payment.id,
                         amount=D("5.00"), currency_iso_code="USD", status=RefundStatus.PROCESSED,
                         funding_source="Payment", idempotency_key=f"om-refund-phantom-{payment.id}",
                         payment_gateway_id=payment.payment_gateway_id)
        s.add_all([phantom, PaymentGatewayLog(
            id=new_id("PaymentGatewayLog"), payment_gateway_id=payment.payment_gateway_id, reference_entity_id=phantom.id,
            interaction_type=InteractionType.REFUND, interaction_status=InteractionStatus.SUCCESS,
            sf_ref_number=phantom.idempotency_key)])
        for record in (s.get(Payment, payment.id), s.get(OrderPaymentSummary, order.summaries[0])):
            record.refunded_amount += D("5.00")
            s.add(record)
    with session_scope(own_store) as s:
        assert find_violations(s)[1] == []  # the store agrees with itself: only the gateway can tell

    first, second = _reconcile(since), _reconcile(since)

    findings = _findings(own_store)
    by_difference = {f.difference: f for f in findings.values()}
    assert sorted(by_difference) == ["AmountDiffers", "MissingAtGateway"] and len(findings) == 2
    altered, missing = by_difference["AmountDiffers"], by_difference["MissingAtGateway"]
    assert (altered.store_record_id, altered.gateway_amount, altered.store_amount) == (sent.id, D("31.00"), D("30.00"))
    assert (missing.store_record_id, missing.store_amount, missing.gateway_reference) == (phantom.id, D("5.00"), None)
    assert first.accounts[0].new_findings == 2 and first.accounts[0].differences == {"AmountDiffers": 1, "MissingAtGateway": 1}
    assert second.accounts[0].new_findings == 0 and second.accounts[0].still_open == 2
    for finding in (altered, missing):
        assert finding.status == FindingStatus.OPEN and finding.first_seen_run_id != finding.last_seen_run_id
        [event] = _difference_events(finding.id, at_least=1)
        assert event["payload"]["difference"] == finding.difference
        roles = {r["prefect.resource.role"]: r["prefect.resource.id"] for r in event["related"]}
        assert roles["order-summary"] == f"om.order-summary.{order.order_summary_id}"
        assert roles["refund"] == f"om.refund.{finding.store_record_id}"
    time.sleep(2)  # an event a second run sent would have arrived by now
    assert all(len(_difference_events(f.id, at_least=0)) == 1 for f in (altered, missing))

    # Put the gateway's amount right: the next run over the window resolves that finding, and only it.
    with session_scope(own_store) as s:
        s.execute(update(SandboxGatewayRefund).where(SandboxGatewayRefund.idempotency_key == key).values(amount=D("30.00")))
    third = _reconcile(since)
    assert third.accounts[0].resolved == 1
    after = {f.difference: f for f in _findings(own_store).values()}
    assert after["AmountDiffers"].status == FindingStatus.RESOLVED
    assert after["AmountDiffers"].resolution == FindingResolution.NOT_FOUND_AGAIN
    assert after["MissingAtGateway"].status == FindingStatus.OPEN


def test_a_gateway_that_names_nothing_is_refused(own_store, prefect_api):
    with pytest.raises(InvalidInputError, match="no Stripe or sandbox PaymentGateway"):
        _reconcile(utcnow() - timedelta(hours=1), gateway="no-such-block")
    assert _findings(own_store) == {}


def test_recording_a_gateway_refund_twice_records_it_once(own_store, prefect_api):
    _order_fixture, payment = _an_order(own_store)
    outside = SandboxGatewayAdapter().refund(RefundCommand(
        idempotency_key="dashboard-twice", charge_reference=payment.gateway_ref_number, amount=D("10.00"), currency="USD"))
    [entry] = [e for e in SandboxGatewayAdapter().list_entries(since=utcnow() - timedelta(minutes=5), until=utcnow())
               if e.reference == outside.gateway_reference]

    with session_scope(own_store) as s:
        first = record_gateway_refund(s, entry, payment.id, run_id="run-1")
    with session_scope(own_store) as s:
        again = record_gateway_refund(s, entry, payment.id, run_id="run-2")

    assert isinstance(first, Refund) and again.id == first.id
    with session_scope(own_store) as s:
        assert s.get(Payment, payment.id).refunded_amount == D("10.00")
        assert len(s.exec(select(Refund).where(Refund.payment_id == payment.id)).all()) == 1
    assert_ledger_invariants(own_store)


def test_a_gateway_refund_larger_than_what_is_left_is_reported_not_recorded(own_store, prefect_api):
    since = utcnow() - timedelta(seconds=1)
    _order_fixture, payment = _an_order(own_store, amount="40.00")
    refund_payment(RefundPaymentInput(charge_id=payment.id, amount=D("30.00")))
    SandboxGatewayAdapter().refund(RefundCommand(  # 20.00 more than the 10.00 left: the gateway let it through
        idempotency_key="dashboard-too-much", charge_reference=payment.gateway_ref_number, amount=D("20.00"), currency="USD"))

    out = _reconcile(since)

    assert out.accounts[0].recorded_refund_ids == []
    [finding] = _findings(own_store).values()
    assert (finding.difference, finding.status, finding.payment_id) == ("MissingInStore", FindingStatus.OPEN, payment.id)
    assert "more than the payment has left to refund" in finding.detail
    with session_scope(own_store) as s:  # the store agrees with itself; the gateway's extra 20.00 waits for a person
        assert s.get(Payment, payment.id).refunded_amount == D("30.00")
        assert find_violations(s)[1] == []


def test_with_recording_off_an_external_refund_is_only_reported(own_store, prefect_api):
    since = utcnow() - timedelta(seconds=1)
    _order_fixture, payment = _an_order(own_store)
    SandboxGatewayAdapter().refund(RefundCommand(
        idempotency_key="dashboard-off", charge_reference=payment.gateway_ref_number, amount=D("15.00"), currency="USD"))

    out = _reconcile(since, record_external_refunds=False)

    assert out.accounts[0].recorded_refund_ids == [] and out.accounts[0].differences == {"MissingInStore": 1}
    [finding] = _findings(own_store).values()
    assert finding.status == FindingStatus.OPEN and "Record External Refunds is off" in finding.detail
    with session_scope(own_store) as s:
        assert s.get(Payment, payment.id).refunded_amount == D("0.00")
        assert find_violations(s)[1] == []


def test_a_second_gateway_record_of_one_refund_is_reported_once(own_store, prefect_api):
    since = utcnow() - timedelta(seconds=1)
    _order_fixture, payment = _an_order(own_store)
    sent = refund_payment(RefundPaymentInput(charge_id=payment.id, amount=D("12.00")))
    with session_scope(own_store) as s:
        key = s.get(Refund, sent.id).idempotency_key
    # A gateway that ignores idempotency keys books the same request a second time.
    twice = SandboxGatewayAdapter(honour_idempotency_keys=False).refund(RefundCommand(
        idempotency_key=key, charge_reference=payment.gateway_ref_number, amount=D("12.00"), currency="USD"))

    first, second = _reconcile(since), _reconcile(since)

    [finding] = _findings(own_store).values()
    assert (finding.difference, finding.store_record_id, finding.gateway_reference) == (
        "DuplicateAtGateway", sent.id, twice.gateway_reference)
    assert first.accounts[0].new_findings == 1 and second.accounts[0].new_findings == 0
    assert first.accounts[0].recorded_refund_ids == []  # never taken for a refund made outside the engine
    assert len(_difference_events(finding.id, at_least=1)) == 1


def test_a_refund_in_more_places_than_the_currency_has_is_reported_and_the_run_goes_on(own_store, prefect_api):
    since = utcnow() - timedelta(seconds=1)
    _order_fixture, payment = _an_order(own_store)
    SandboxGatewayAdapter().refund(RefundCommand(
        idempotency_key="dashboard-sub-cent", charge_reference=payment.gateway_ref_number, amount=D("10.005"),
        currency="USD"))

    out = _reconcile(since)

    assert out.accounts[0].recorded_refund_ids == []
    [finding] = _findings(own_store).values()
    assert finding.status == FindingStatus.OPEN and "not recorded" in finding.detail
    assert finding.gateway_amount == D("10.005")
    with session_scope(own_store) as s:
        assert s.get(Payment, payment.id).refunded_amount == D("0.00")


def test_an_external_payments_refunds_are_not_looked_for_at_its_gateway(own_store, prefect_api):
    since = utcnow() - timedelta(seconds=1)
    with session_scope(own_store) as s:
        order = make_order(s, payments=[])
        ops = create_order_payment_summary(session=s, obj_in=OrderPaymentSummaryCreate(
            order_summary_id=order.order_summary_id))
        s.flush()
        external = create_payment(session=s, obj_in=PaymentCreate(  # names a gateway, but its money moves outside
            order_payment_summary_id=ops.id, payment_gateway_id=order.gateway_id, amount=D("30.00"),
            processing_mode=ProcessingMode.EXTERNAL))
    refund_payment(RefundPaymentInput(charge_id=external.id, amount=D("30.00")))  # moves money outside: no gateway

    out = _reconcile(since)

    assert out.accounts[0].differences == {} and _findings(own_store) == {}
    assert_ledger_invariants(own_store)


def test_the_release_of_an_uncaptured_remainder_at_stripe_is_not_a_refund(own_store, prefect_api, localstripe):
    """Stripe (and localstripe) makes a refund of the uncaptured rest when less than the
    authorized amount is captured: reconciliation must not take it for money paid back."""
    since = utcnow() - timedelta(seconds=1)
    block = f"reconcile-stripe-{uuid.uuid4().hex[:6]}"
    StripeGateway(api_key=API_KEY, api_base=localstripe, timeout_seconds=10).save(block, overwrite=True)
    client = stripe.StripeClient(API_KEY, base_addresses={"api": localstripe}, max_network_retries=0)
    reference = charge(client, 10000, capture=False)
    with session_scope(own_store) as s:
        order = make_order(s, payments=[], invoices=["60.00"], gateway_block=block)
        gateway = s.get(PaymentGateway, order.gateway_id)
        gateway.gateway_provider = GatewayProvider.STRIPE
        s.add(gateway)
        ops = create_order_payment_summary(session=s, obj_in=OrderPaymentSummaryCreate(
            order_summary_id=order.order_summary_id))
        s.flush()
        create_payment_authorization(session=s, obj_in=PaymentAuthorizationCreate(
            order_payment_summary_id=ops.id, payment_gateway_id=order.gateway_id, amount=D("100.00"),
            gateway_ref_number=reference))
    ensure_funds_async(order.order_summary_id, EnsureFundsInput(invoice_id=order.invoice_ids[0]))  # captures 60.00
    assert [r.amount for r in client.v1.refunds.list(params={"charge": reference}).auto_paging_iter()] == [4000]

    out = _reconcile(since, gateway=block)

    # (localstripe keeps no amount_captured, so its charge shows the authorized 100.00 against
    # the store's 60.00 capture: an AmountDiffers that Stripe itself would not give.)
    assert out.accounts[0].recorded_refund_ids == [] and "MissingInStore" not in out.accounts[0].differences
    with session_scope(own_store) as s:
        assert s.exec(select(Refund)).all() == []
    # A real refund of that charge, made outside the engine, is still recorded.
    client.v1.refunds.create(params={"charge": reference, "amount": 1500})
    again = _reconcile(since, gateway=block)
    [recorded_id] = again.accounts[0].recorded_refund_ids
    with session_scope(own_store) as s:
        assert s.get(Refund, recorded_id).amount == D("15.00")
    assert_ledger_invariants(own_store)


def test_match_notes_tell_a_second_gateway_record_from_a_resumed_run(own_store):
    with session_scope(own_store) as s:
        assert remember_matches(s, "run-a", [("0a4000000000001AAA", "re_1"), ("0a4000000000002AAA", "re_2")]) == {}
    with session_scope(own_store) as s:  # the run resumed: it notes the same again
        assert remember_matches(s, "run-a", [("0a4000000000001AAA", "re_1")]) == {}
    with session_scope(own_store) as s:  # a later page: another gateway record of the same store record
        assert remember_matches(s, "run-a", [("0a4000000000002AAA", "re_9"), ("0a4000000000003AAA", "re_3")]) == {
            "0a4000000000002AAA": "re_2"}
    with session_scope(own_store) as s:  # in one page, too; another run's notes are its own
        assert remember_matches(s, "run-b", [("0a4000000000002AAA", "re_2"), ("0a4000000000002AAA", "re_8")]) == {
            "0a4000000000002AAA": "re_2"}
        forget_matches(s, "run-a")
        assert s.exec(select(ReconciliationMatch.run_id).distinct()).all() == ["run-b"]
