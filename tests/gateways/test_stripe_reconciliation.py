"""What reconciliation reads from Stripe: the adapter's ``list_entries`` and ``find_entry``
through the real stripe SDK, against localstripe on loopback.

localstripe is shared by the whole session (other tests' charges and refunds are there),
so each test looks only at the records it made."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from domain.reconciliation import RecordKind, Settlement
from gateways.contract import GatewayOutcome, RefundCommand
from gateways.stripe import KEY_METADATA, StripeGatewayAdapter
from tests.gateways.test_stripe_adapter import charge



def _next_second() -> None:
    """Wait into the next whole second: Stripe's ``created`` counts whole seconds, so a record
    made before this is in an earlier second than anything made after."""
    time.sleep(1.02 - time.time() % 1)


def _engine_refund(adapter: StripeGatewayAdapter, reference: str, amount: str) -> tuple[str, str]:
    """A refund as the engine sends it (its key in the metadata): (its id at Stripe, its key)."""
    key = f"om-refund-{uuid.uuid4()}"
    result = adapter.refund(RefundCommand(idempotency_key=key, charge_reference=reference, amount=D(amount),
                                          currency="USD", metadata={"refund_id": "0a7RECON"}))
    assert result.outcome is GatewayOutcome.APPROVED
    return result.gateway_reference, key


def _exact(amount: D, expected: str) -> bool:
    return amount == D(expected) and str(amount) == expected


def test_a_window_lists_a_charge_and_its_refunds_and_nothing_made_outside_it(adapter, stripe_client):
    before = charge(stripe_client, 1500)  # made before the window
    _next_second()
    since = datetime.now(UTC)
    reference = charge(stripe_client, 8000)
    ours, key = _engine_refund(adapter, reference, "12.34")
    outside = stripe_client.v1.refunds.create(params={"charge": reference, "amount": 3000}).id  # no metadata of ours
    late_refund_of_early_charge = stripe_client.v1.refunds.create(params={"charge": before, "amount": 500}).id
    until = datetime.now(UTC)
    _next_second()
    after = charge(stripe_client, 2500)  # made after the window (in a later second than its end)
    mine = {before, reference, ours, outside, late_refund_of_early_charge, after}

    listed = [entry for entry in adapter.list_entries(since=since, until=until) if entry.reference in mine]

    by_reference = {entry.reference: entry for entry in listed}
    assert len(by_reference) == len(listed)  # each record once
    assert set(by_reference) == {reference, ours, outside, late_refund_of_early_charge}
    kinds = [entry.kind for entry in listed]
    assert kinds.index(RecordKind.PAYMENT) > max(i for i, k in enumerate(kinds) if k is RecordKind.REFUND)  # refunds first

    paid = by_reference[reference]
    assert (paid.kind, paid.currency, paid.settlement, paid.status) == (RecordKind.PAYMENT, "USD", Settlement.SUCCEEDED,
                                                                        "succeeded")
    assert _exact(paid.amount, "80.00") and paid.parent_reference is None and paid.idempotency_key is None
    assert since - timedelta(seconds=1) < paid.created < until and paid.created.tzinfo is not None

    sent = by_reference[ours]
    assert (sent.kind, sent.currency, sent.settlement, sent.status) == (RecordKind.REFUND, "USD", Settlement.SUCCEEDED,
                                                                        "succeeded")
    assert _exact(sent.amount, "12.34") and sent.parent_reference == reference and sent.idempotency_key == key
    assert sent.raw["metadata"][KEY_METADATA] == key

    made_outside = by_reference[outside]
    assert (made_outside.kind, made_outside.currency, made_outside.settlement) == (RecordKind.REFUND, "USD",
                                                                                   Settlement.SUCCEEDED)
    assert _exact(made_outside.amount, "30.00") and made_outside.parent_reference == reference
    assert made_outside.idempotency_key is None

    late = by_reference[late_refund_of_early_charge]
    assert _exact(late.amount, "5.00") and late.parent_reference == before


def test_a_window_before_the_records_lists_none_of_them(adapter, stripe_client):
    _next_second()
    made_from = datetime.now(UTC)
    reference = charge(stripe_client, 4000)
    refund = stripe_client.v1.refunds.create(params={"charge": reference, "amount": 1000}).id

    earlier = list(adapter.list_entries(since=made_from - timedelta(hours=1), until=made_from - timedelta(seconds=1)))
    later = list(adapter.list_entries(since=made_from + timedelta(seconds=5), until=made_from + timedelta(hours=1)))

    assert {reference, refund}.isdisjoint(e.reference for e in earlier + later)


def test_find_entry_finds_a_refund_by_id_and_by_its_charge_and_key(adapter, stripe_client):
    reference = charge(stripe_client, 6000)
    ours, key = _engine_refund(adapter, reference, "20.00")
    outside = stripe_client.v1.refunds.create(params={"charge": reference, "amount": 700}).id

    by_id = adapter.find_entry(RecordKind.REFUND, reference=ours, idempotency_key=None)
    by_key = adapter.find_entry(RecordKind.REFUND, reference=None, idempotency_key=key, parent_reference=reference)
    not_ours = adapter.find_entry(RecordKind.REFUND, reference=outside, idempotency_key=None)

    for found in (by_id, by_key):
        assert (found.kind, found.reference, found.currency, found.settlement) == (RecordKind.REFUND, ours, "USD",
                                                                                   Settlement.SUCCEEDED)
        assert _exact(found.amount, "20.00") and found.parent_reference == reference and found.idempotency_key == key
    assert (not_ours.reference, not_ours.idempotency_key, not_ours.parent_reference) == (outside, None, reference)
    assert _exact(not_ours.amount, "7.00")
    # Another key on the same charge, or a key without its charge: nothing to find.
    assert adapter.find_entry(RecordKind.REFUND, reference=None, idempotency_key="om-refund-never-sent",
                              parent_reference=reference) is None
    assert adapter.find_entry(RecordKind.REFUND, reference=None, idempotency_key=key) is None


def test_find_entry_finds_a_charge_by_id(adapter, stripe_client):
    reference = charge(stripe_client, 4321)
    held = charge(stripe_client, 1000, capture=False)

    found = adapter.find_entry(RecordKind.PAYMENT, reference=reference, idempotency_key=None)
    uncaptured = adapter.find_entry(RecordKind.PAYMENT, reference=held, idempotency_key=None)

    assert (found.kind, found.reference, found.currency, found.settlement) == (RecordKind.PAYMENT, reference, "USD",
                                                                               Settlement.SUCCEEDED)
    assert _exact(found.amount, "43.21") and found.idempotency_key is None
    assert (uncaptured.kind, uncaptured.status, uncaptured.settlement) == (RecordKind.AUTHORIZATION, "uncaptured",
                                                                           Settlement.SUCCEEDED)
    assert _exact(uncaptured.amount, "10.00")


@pytest.mark.parametrize(("kind", "reference"), [
    (RecordKind.REFUND, "re_nosuchrefund00"), (RecordKind.PAYMENT, "ch_nosuchcharge00"),
    (RecordKind.AUTHORIZATION, "pi_nosuchintent00"),
])
def test_find_entry_of_an_unknown_id_is_none(adapter, kind, reference):
    assert adapter.find_entry(kind, reference=reference, idempotency_key=None) is None
