"""Ledger checks every money-moving test runs (DESIGN.md §8)."""

from __future__ import annotations

import functools
from collections import Counter

from sqlmodel import select

from actions.audit_ledger import find_violations
from db.engine import session_scope
from db.reconciliation import GATEWAY_FUNDING
from db.models import GatewayProvider, Payment, PaymentGateway, Refund, RefundStatus
from gateways.sandbox_ledger import SandboxGatewayRefund


def assert_ledger_invariants(store_url: str) -> None:
    """Refunded + PendingRefund <= Captured + PendingCapture per summary and payment;
    rollups equal their parts; balances within 0..total; one gateway log row per refund;
    and each gateway's books agree with ours (the sandbox's, and Stripe's as localstripe
    keeps them): each approved gateway refund is one of our refunds (Processed, or Unknown
    after a timeout) for the same amount, once. Refunds and captures of External payments
    and authorizations are in no gateway's books (their money moves outside the engine):
    they are not looked for there, and finding one there fails. A refund made at the gateway
    outside the engine and recorded by reconciliation (funding source Gateway) is matched by
    the gateway's id, since it was never sent with a key of ours."""
    with session_scope(store_url) as session:
        _checked, violations = find_violations(session)
        assert violations == [], violations
        through_stripe = session.exec(
            select(Refund, Payment.gateway_ref_number, PaymentGateway.merchant_credential_name)
            .join(Payment, Refund.payment_id == Payment.id)
            .join(PaymentGateway, Payment.payment_gateway_id == PaymentGateway.id)
            .where(PaymentGateway.gateway_provider == GatewayProvider.STRIPE)
        ).all()
        stripe_keys = {refund.idempotency_key for refund, _charge, _block in through_stripe}
        # An External payment's refunds move money outside the engine: no gateway has them.
        external_keys = set(session.exec(select(Refund.idempotency_key).join(Payment, Refund.payment_id == Payment.id)
                                         .where(_external(Payment))))
        refunds = {r.idempotency_key: r for r in session.exec(select(Refund))
                   if r.idempotency_key not in stripe_keys | external_keys}
        recorded = {r.gateway_ref_number: r for r in refunds.values() if r.funding_source == GATEWAY_FUNDING}
        gateway_rows = list(session.exec(select(SandboxGatewayRefund)))
    keys = Counter(row.idempotency_key for row in gateway_rows)
    assert all(count == 1 for count in keys.values())
    assert not external_keys & set(keys), f"refunds of External payments reached a gateway: {external_keys & set(keys)}"
    booked_references = Counter(row.gateway_reference for row in gateway_rows if row.gateway_reference)
    for row in gateway_rows:
        ours = refunds.get(row.idempotency_key) or recorded.get(row.gateway_reference)
        assert ours is not None, f"gateway refund {row.idempotency_key} has no Refund row"
        assert ours.amount == row.amount
        if row.outcome == "approve":
            assert ours.status in (RefundStatus.PROCESSED, RefundStatus.UNKNOWN), (ours.id, ours.status)
        elif row.outcome == "reversed":
            assert ours.status in (RefundStatus.PROCESSED, RefundStatus.REVERSED), (ours.id, ours.status)
        else:
            assert ours.status == RefundStatus.FAILED, (ours.id, ours.status)
    for key, refund in refunds.items():
        if refund.status == RefundStatus.PROCESSED and refund.funding_source == GATEWAY_FUNDING:
            assert booked_references.get(refund.gateway_ref_number) == 1, f"recorded refund {refund.id} not at the gateway"
        elif refund.status == RefundStatus.PROCESSED:
            assert keys.get(key) == 1, f"processed refund {refund.id} not booked by the gateway"
    _assert_captures_agree_with_the_gateway(store_url)
    _assert_stripe_agrees(through_stripe)


def _external(payment):
    """An External payment (Salesforce's ProcessingMode), or one naming no gateway."""
    from sqlalchemy import or_

    return or_(payment.processing_mode == "External", payment.payment_gateway_id.is_(None))


@functools.cache
def _stripe_client(block: str):
    """A client for the account an OM Stripe Gateway block names (loaded once per session:
    every ledger check after the Stripe tests reads their charges)."""
    import stripe

    from blocks import StripeGateway

    account = StripeGateway.load(block)
    return stripe.StripeClient(account.api_key.get_secret_value(), base_addresses={"api": account.api_base})


def _assert_stripe_agrees(through_stripe: list[tuple[Refund, str, str]]) -> None:
    """Stripe's refunds of each charge we refunded through it carry our keys: each key at
    Stripe is one of our refunds, once, for the same amount; each Processed refund is there."""

    from gateways.stripe import KEY_METADATA, from_stripe_amount

    charges: dict[tuple[str, str], list[Refund]] = {}
    for refund, charge, block in through_stripe:
        charges.setdefault((block, charge), []).append(refund)
    for (block, charge), ours in charges.items():
        client = _stripe_client(block)
        reference = {"payment_intent" if charge.startswith("pi_") else "charge": charge, "limit": 100}
        at_stripe = [r.to_dict() for r in client.v1.refunds.list(params=reference).auto_paging_iter()]
        keys = Counter(r["metadata"].get(KEY_METADATA) for r in at_stripe if KEY_METADATA in r["metadata"])
        assert all(count == 1 for count in keys.values()), f"a key refunded twice at Stripe: {keys}"
        by_key = {r.idempotency_key: r for r in ours}
        for booked in at_stripe:
            key = booked["metadata"].get(KEY_METADATA)
            if key is None:
                continue
            refund = by_key.get(key)
            assert refund is not None, f"Stripe refund {booked['id']} ({key}) has no Refund row"
            assert from_stripe_amount(booked["amount"], booked["currency"]) == refund.amount
            if booked["status"] == "succeeded":
                assert refund.status in (RefundStatus.PROCESSED, RefundStatus.UNKNOWN), (refund.id, refund.status)
        stripe_ids = {booked["id"] for booked in at_stripe}
        for refund in ours:
            if refund.status == RefundStatus.PROCESSED and refund.funding_source == GATEWAY_FUNDING:
                assert refund.gateway_ref_number in stripe_ids, f"recorded refund {refund.id} not at Stripe"
            elif refund.status == RefundStatus.PROCESSED:
                assert keys.get(refund.idempotency_key) == 1, f"processed refund {refund.id} not at Stripe"


def _assert_captures_agree_with_the_gateway(store_url: str) -> None:
    """Each capture the sandbox booked is one of our capture Payments (Processed, or Draft
    after a timeout) for the same amount, once; each Processed capture was booked. Stripe
    captures an authorization once: at most one of ours is Processed, and it is captured
    at Stripe; one captured at Stripe is ours (Processed, or Draft after a timeout)."""
    from db.models import Payment, PaymentAuthorization, PaymentStatus
    from gateways.sandbox_ledger import SandboxGatewayCapture

    with session_scope(store_url) as session:
        through_stripe = session.exec(
            select(Payment, PaymentAuthorization.gateway_ref_number, PaymentGateway.merchant_credential_name)
            .join(PaymentAuthorization, Payment.payment_authorization_id == PaymentAuthorization.id)
            .join(PaymentGateway, Payment.payment_gateway_id == PaymentGateway.id)
            .where(PaymentGateway.gateway_provider == GatewayProvider.STRIPE)
        ).all()
        stripe_ids = {payment.id for payment, _reference, _block in through_stripe}
        all_captures = list(session.exec(select(Payment).where(Payment.payment_authorization_id.is_not(None))))
        external = {f"om-capture-{p.id}" for p in all_captures if p.processing_mode == "External" or p.payment_gateway_id is None}
        captures = {f"om-capture-{p.id}": p for p in all_captures if p.id not in stripe_ids and f"om-capture-{p.id}" not in external}
        booked = list(session.exec(select(SandboxGatewayCapture)))
    keys = Counter(row.idempotency_key for row in booked)
    assert all(count == 1 for count in keys.values())
    assert not external & set(keys), f"captures of External authorizations reached a gateway: {external & set(keys)}"
    for row in booked:
        ours = captures.get(row.idempotency_key)
        assert ours is not None, f"gateway capture {row.idempotency_key} has no Payment"
        assert ours.amount == row.amount
        expected = (PaymentStatus.PROCESSED, PaymentStatus.DRAFT) if row.outcome == "approve" else (PaymentStatus.CANCELED,)
        assert ours.status in expected, (ours.id, ours.status)
    for key, payment in captures.items():
        if payment.status == PaymentStatus.PROCESSED:
            assert keys.get(key) == 1, f"processed capture {payment.id} not booked by the gateway"
    _assert_stripe_captures_agree(through_stripe)


def _assert_stripe_captures_agree(through_stripe: list) -> None:

    from db.models import PaymentStatus

    authorizations: dict[tuple[str, str], list] = {}
    for payment, reference, block in through_stripe:
        authorizations.setdefault((block, reference), []).append(payment)
    for (block, reference), ours in authorizations.items():
        client = _stripe_client(block)
        if reference.startswith("pi_"):
            captured = client.v1.payment_intents.retrieve(reference).status == "succeeded"
        else:
            captured = bool(client.v1.charges.retrieve(reference).captured)
        processed = [p.id for p in ours if p.status == PaymentStatus.PROCESSED]
        assert len(processed) <= 1, f"Stripe authorization {reference} captured more than once: {processed}"
        assert captured == bool(processed) or (captured and any(p.status == PaymentStatus.DRAFT for p in ours)), (
            reference, captured, [(p.id, p.status) for p in ours])


# Moved by the scheduled webhook deliveries and by the executors' heartbeats and claims of
# scheduled runs, whatever a request did.
BACKGROUND_TABLES = {"webhook_delivery", "executor_heartbeat", "executor_claim"}


def snapshot(store_url: str) -> dict[str, list[dict]]:
    """Every row of every table (but the background ones), the sandbox gateway's books
    included, to show that a refused request changed nothing."""
    from sqlmodel import SQLModel

    from gateways.sandbox_ledger import metadata as sandbox_books

    tables = {}
    with session_scope(store_url) as session:
        connection = session.connection()
        for table in [*SQLModel.metadata.sorted_tables, *sandbox_books.sorted_tables]:
            if table.name in BACKGROUND_TABLES:
                continue
            rows = connection.execute(table.select().order_by(*table.primary_key.columns)).all()
            tables[table.name] = [tuple(row) for row in rows]
    return tables
