"""The Stripe adapter through the real stripe SDK, against localstripe on loopback."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
import stripe

from gateways.contract import CaptureCommand, GatewayOutcome, RefundCommand
from gateways.stripe import KEY_METADATA, StripeGatewayAdapter, _refund_result, from_stripe_amount, to_stripe_amount
from runtime.processes import free_port

from tests.gateways.conftest import API_KEY


def card(client: stripe.StripeClient) -> str:
    method = client.v1.payment_methods.create(params={
        "type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    return method.id


def charge(client: stripe.StripeClient, amount: int, currency: str = "usd", *, capture: bool = True) -> str:
    return client.v1.charges.create(params={
        "amount": amount, "currency": currency, "source": card(client), "capture": capture}).id


def authorization(client: stripe.StripeClient, amount: int, currency: str = "usd") -> str:
    intent = client.v1.payment_intents.create(params={
        "amount": amount, "currency": currency, "payment_method": card(client), "capture_method": "manual",
        "confirm": True})
    assert intent.status == "requires_capture"
    return intent.id


def refunds_at_stripe(client: stripe.StripeClient, **reference) -> list:
    return list(client.v1.refunds.list(params={**reference, "limit": 100}).auto_paging_iter())


def refund_command(reference: str, amount: str, currency: str = "USD") -> RefundCommand:
    return RefundCommand(idempotency_key=f"refund-{uuid.uuid4()}", charge_reference=reference, amount=D(amount),
                         currency=currency, metadata={"refund_id": "0a7TEST"})


@pytest.mark.parametrize(("amount", "currency", "units"), [
    ("12.34", "USD", 1234), ("500", "JPY", 500), ("10", "MGA", 10), ("500", "UGX", 500), ("1.230", "KWD", 1230),
    ("7", "ISK", 700), ("0.01", "EUR", 1),
])
def test_amounts_go_to_stripe_in_its_smallest_units_and_back(amount, currency, units):
    assert to_stripe_amount(D(amount), currency) == units
    assert from_stripe_amount(units, currency) == D(amount)


def test_an_amount_stripe_cannot_take_is_refused():
    with pytest.raises(ValueError, match="more decimals"):
        to_stripe_amount(D("1.005"), "USD")
    with pytest.raises(ValueError, match="more decimals"):
        to_stripe_amount(D("10.50"), "MGA")  # two decimals in ISO 4217, none at Stripe
    with pytest.raises(ValueError, match="steps of 0.010"):
        to_stripe_amount(D("1.235"), "KWD")
    with pytest.raises(ValueError, match="steps of 1.00"):
        to_stripe_amount(D("7.50"), "ISK")


def test_refund_of_a_charge_is_booked_with_its_key_and_found_by_it(adapter, stripe_client):
    reference = charge(stripe_client, 5000)
    command = refund_command(reference, "12.34")

    result = adapter.refund(command)

    assert result.outcome is GatewayOutcome.APPROVED and result.gateway_reference.startswith("re_")
    (booked,) = refunds_at_stripe(stripe_client, charge=reference)
    assert (booked.id, booked.amount, booked.currency) == (result.gateway_reference, 1234, "usd")
    assert booked.metadata[KEY_METADATA] == command.idempotency_key and booked.metadata["refund_id"] == "0a7TEST"
    assert result.request["idempotency_key"] == command.idempotency_key and result.response["id"] == booked.id

    found = adapter.lookup_refund(command)
    assert (found.outcome, found.gateway_reference) == (GatewayOutcome.APPROVED, booked.id)
    assert adapter.lookup_refund(refund_command(reference, "12.34")) is None  # another key: nothing at Stripe


def test_lookup_finds_a_refund_among_many_pages(adapter, stripe_client):
    reference = charge(stripe_client, 50000)
    commands = [refund_command(reference, "1.00") for _ in range(105)]
    for command in commands:
        assert adapter.refund(command).outcome is GatewayOutcome.APPROVED
    first = adapter.lookup_refund(commands[0])  # the oldest: on the second page (newest first)
    assert first is not None and first.response["metadata"][KEY_METADATA] == commands[0].idempotency_key


def test_refund_of_a_payment_intent(adapter, stripe_client):
    intent = stripe_client.v1.payment_intents.create(params={
        "amount": 2000, "currency": "eur", "payment_method": card(stripe_client), "confirm": True})
    command = refund_command(intent.id, "5.00", "EUR")
    assert adapter.refund(command).outcome is GatewayOutcome.APPROVED
    assert [r.amount for r in refunds_at_stripe(stripe_client, payment_intent=intent.id)] == [500]
    assert adapter.lookup_refund(command).outcome is GatewayOutcome.APPROVED


def test_zero_decimal_currency_is_sent_as_is(adapter, stripe_client):
    reference = charge(stripe_client, 5000, "jpy")
    assert adapter.refund(refund_command(reference, "500", "JPY")).outcome is GatewayOutcome.APPROVED
    assert [r.amount for r in refunds_at_stripe(stripe_client, charge=reference)] == [500]


def test_a_refund_stripe_made_in_another_currency_is_left_to_a_person(adapter, stripe_client):
    """The store says USD, the charge is in JPY: Stripe refunds 500 yen for "5.00". The
    money moved, so it is not a failure; it is not what was asked, so not a success."""
    reference = charge(stripe_client, 5000, "jpy")
    command = refund_command(reference, "5.00", "USD")
    result = adapter.refund(command)
    assert (result.outcome, result.result_code) == (GatewayOutcome.TIMEOUT, "mismatch")
    assert "JPY, not USD" in result.message and result.gateway_reference.startswith("re_")
    assert adapter.lookup_refund(command).result_code == "mismatch"  # the resolver leaves it for a person too


def test_a_refused_request_is_declined(adapter, stripe_client):
    result = adapter.refund(refund_command("ch_doesnotexist00000000", "1.00"))
    assert result.outcome is GatewayOutcome.DECLINED
    assert result.gateway_reference is None and "InvalidRequestError" in result.message


def test_an_amount_stripe_cannot_take_is_an_error_and_nothing_is_sent(adapter, stripe_client):
    reference = charge(stripe_client, 5000)
    result = adapter.refund(refund_command(reference, "1.001"))
    assert (result.outcome, result.result_code) == (GatewayOutcome.ERROR, "invalid_amount")
    assert refunds_at_stripe(stripe_client, charge=reference) == []


def test_a_rejected_key_is_an_error(localstripe):
    result = StripeGatewayAdapter(api_key="not-a-key", api_base=localstripe).refund(refund_command("ch_x", "1.00"))
    assert result.outcome is GatewayOutcome.ERROR and "AuthenticationError" in result.message


def test_no_answer_is_unknown_never_failed():
    silent = StripeGatewayAdapter(api_key=API_KEY, api_base=f"http://127.0.0.1:{free_port()}", timeout_seconds=2)
    result = silent.refund(refund_command("ch_x", "1.00"))
    assert result.outcome is GatewayOutcome.TIMEOUT and "APIConnectionError" in result.message


@pytest.mark.parametrize(("status", "outcome"), [
    ("succeeded", GatewayOutcome.APPROVED), ("pending", GatewayOutcome.TIMEOUT),
    ("requires_action", GatewayOutcome.TIMEOUT), ("failed", GatewayOutcome.DECLINED),
    ("canceled", GatewayOutcome.DECLINED),
])
def test_refund_status_at_stripe_decides_the_outcome(status, outcome):
    refund = stripe.Refund.construct_from(
        {"id": "re_1", "object": "refund", "status": status, "amount": 100, "failure_reason": "lost_or_stolen_card"},
        API_KEY)
    result = _refund_result(refund, refund_command("ch_1", "1.00"), {})
    assert result.outcome is outcome
    if status == "failed":
        assert result.result_code == "lost_or_stolen_card"


def test_capture_of_an_authorization_once(adapter, stripe_client):
    intent = authorization(stripe_client, 5000)
    command = CaptureCommand(idempotency_key=f"capture-{uuid.uuid4()}", authorization_reference=intent,
                             amount=D("30.00"), currency="USD")
    assert adapter.lookup_capture(command) is None  # nothing captured yet: safe to send

    result = adapter.capture(command)

    assert (result.outcome, result.gateway_reference) == (GatewayOutcome.APPROVED, intent)
    assert stripe_client.v1.payment_intents.retrieve(intent).status == "succeeded"
    assert adapter.lookup_capture(command).outcome is GatewayOutcome.APPROVED
    # Stripe captures an authorization once: another capture (another key) is refused.
    another = CaptureCommand(idempotency_key=f"capture-{uuid.uuid4()}", authorization_reference=intent,
                             amount=D("10.00"), currency="USD")
    assert adapter.capture(another).outcome is GatewayOutcome.DECLINED


def test_capture_of_an_uncaptured_charge(adapter, stripe_client):
    reference = charge(stripe_client, 4000, capture=False)
    command = CaptureCommand(idempotency_key=f"capture-{uuid.uuid4()}", authorization_reference=reference,
                             amount=D("40.00"), currency="USD")
    assert adapter.lookup_capture(command) is None
    assert adapter.capture(command).outcome is GatewayOutcome.APPROVED
    assert stripe_client.v1.charges.retrieve(reference).captured is True
    assert adapter.lookup_capture(command).outcome is GatewayOutcome.APPROVED
