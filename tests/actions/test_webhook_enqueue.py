"""Queuing webhook deliveries searches only the recent outbox: from an hour before the
newest event already queued. On a store of its own (the outbox's contents are the test's)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import select

from actions.webhooks import ENQUEUE_LOOKBACK, enqueue
from blocks.webhooks import WebhookSubscription
from db.engine import session_scope
from db.models import RefundEvent, WebhookDelivery
from db.types import utcnow

SUBSCRIPTION = WebhookSubscription(url="http://127.0.0.1:9/hook", signing_secret="test")


def event(store: str, age: timedelta, event_type: str = "RefundCreated") -> str:
    """An event written ``age`` ago (committed now: a late transaction's)."""
    event_id = str(uuid.uuid4())
    with session_scope(store) as s:
        s.add(RefundEvent(event_id=event_id, event_type=event_type, refund_id="0a7AAAAAAAAAAAAAAA", sequence=1,
                          entity="{}", created_date=utcnow() - age))
    return event_id


def queued(store: str, name: str) -> set[str]:
    with session_scope(store) as s:
        return set(s.exec(select(WebhookDelivery.event_id).where(WebhookDelivery.subscription == name)))


def enqueue_now(store: str, name: str, subscribed_since: timedelta) -> int:
    with session_scope(store) as s:
        return enqueue(s, name, SUBSCRIPTION, since=utcnow() - subscribed_since)


def test_events_are_queued_once_from_the_lookback_before_the_newest_queued(own_store):
    early, newest = event(own_store, timedelta(hours=5)), event(own_store, timedelta(hours=3))
    assert enqueue_now(own_store, "books", subscribed_since=timedelta(days=1)) == 2
    assert enqueue_now(own_store, "books", subscribed_since=timedelta(days=1)) == 0

    late = event(own_store, timedelta(hours=3) + ENQUEUE_LOOKBACK / 2)  # older than the newest queued, within the lookback
    too_late = event(own_store, timedelta(hours=3) + ENQUEUE_LOOKBACK * 2)
    fresh = event(own_store, timedelta(0))

    assert enqueue_now(own_store, "books", subscribed_since=timedelta(days=1)) == 2
    assert queued(own_store, "books") == {early, newest, late, fresh}
    assert too_late not in queued(own_store, "books")


def test_a_new_subscription_gets_the_events_since_it_started_of_its_types(own_store):
    before = event(own_store, timedelta(hours=2))
    created = event(own_store, timedelta(minutes=30))
    updated = event(own_store, timedelta(minutes=20), event_type="RefundUpdated")
    with session_scope(own_store) as s:
        assert enqueue(s, "created-only", WebhookSubscription(
            url="http://127.0.0.1:9/hook", signing_secret="test", event_types=["RefundCreated"]),
            since=utcnow() - timedelta(hours=1)) == 1
    assert queued(own_store, "created-only") == {created}
    assert before not in queued(own_store, "created-only") and updated not in queued(own_store, "created-only")
