"""Queuing webhook deliveries searches only the recent outbox: from ENQUEUE_LOOKBACK_EVENTS
positions before the newest event already queued. On a store of its own (the outbox is
the test's, and its events get explicit positions)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import select

from actions.webhooks import ENQUEUE_LOOKBACK_EVENTS, enqueue
from blocks.webhooks import WebhookSubscription
from db.engine import session_scope
from db.models import RefundEvent, WebhookDelivery
from db.types import utcnow

SUBSCRIPTION = WebhookSubscription(url="http://127.0.0.1:9/hook", signing_secret="test")


def event(store: str, position: int, *, age: timedelta = timedelta(0), event_type: str = "RefundCreated") -> str:
    """An event numbered ``position`` when written ``age`` ago, committed now."""
    event_id = str(uuid.uuid4())
    with session_scope(store) as s:
        s.add(RefundEvent(position=position, event_id=event_id, event_type=event_type, refund_id="0a7AAAAAAAAAAAAAAA",
                          sequence=1, entity="{}", created_date=utcnow() - age))
    return event_id


def queued(store: str, name: str) -> set[str]:
    with session_scope(store) as s:
        return set(s.exec(select(WebhookDelivery.event_id).where(WebhookDelivery.subscription == name)))


def enqueue_now(store: str, name: str, subscription: WebhookSubscription = SUBSCRIPTION) -> int:
    with session_scope(store) as s:
        return enqueue(s, name, subscription, since=utcnow() - timedelta(days=1))


def test_events_are_queued_once_from_the_lookback_before_the_newest_queued(own_store):
    newest = 3 * ENQUEUE_LOOKBACK_EVENTS
    first, second = event(own_store, 1), event(own_store, newest)
    assert enqueue_now(own_store, "books") == 2
    assert enqueue_now(own_store, "books") == 0

    late = event(own_store, newest - ENQUEUE_LOOKBACK_EVENTS + 1)  # written before the newest, committed after
    too_late = event(own_store, newest - ENQUEUE_LOOKBACK_EVENTS)
    fresh = event(own_store, newest + 1)

    assert enqueue_now(own_store, "books") == 2
    assert queued(own_store, "books") == {first, second, late, fresh}
    assert too_late not in queued(own_store, "books")
    assert enqueue_now(own_store, "another") == 5  # a subscription's first search reaches back to its start


def test_a_subscription_gets_the_events_of_its_types_since_it_started(own_store):
    before = event(own_store, 1, age=timedelta(days=2))
    created = event(own_store, 2)
    updated = event(own_store, 3, event_type="RefundUpdated")
    created_only = WebhookSubscription(url="http://127.0.0.1:9/hook", signing_secret="test", event_types=["RefundCreated"])
    assert enqueue_now(own_store, "created-only", created_only) == 1
    assert queued(own_store, "created-only") == {created}
    assert before not in queued(own_store, "created-only") and updated not in queued(own_store, "created-only")
