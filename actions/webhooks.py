"""Refund Created/Updated webhooks from the outbox (db/outbox.py), signed and retried.

For each WebhookSubscription block: every refund event since the subscription was saved
gets a WebhookDelivery row (the unique (subscription, event) pair makes this safe to
repeat); due deliveries are POSTed in event order, each recorded in its own transaction.
A 2xx answer marks it Delivered; anything else schedules the next attempt after an
exponential backoff (by default 30 s, 1 min, 2 min, ... at most an hour) until ``max_attempts``, then
Failed. A crash between the POST and its record sends that event again: subscribers drop
repeats by ``eventId`` and stale events by ``sequence`` (see ``verify_signature``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta

import httpx
from prefect import get_run_logger, task
from pydantic import Field
from sqlalchemy import and_
from sqlmodel import Session, col, select

from actions.fields import ActionModel
from blocks.webhooks import WebhookSubscription
from db.engine import session_scope
from db.models import RefundEvent, WebhookDelivery
from db.types import utcnow

MAX_BACKOFF_SECONDS = 3600


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``, as Stripe signs its webhooks."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance_seconds: int = 300, now: float | None = None) -> bool:
    """What a subscriber checks: the signature matches the body and is recent (no replays of old deliveries)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        return False
    expected = signature_header(secret, body, timestamp).split("v1=", 1)[1].encode()
    return hmac.compare_digest(expected, parts.get("v1", "").encode("utf-8", "replace"))


def backoff(attempts: int, base_seconds: float = 30.0) -> timedelta:
    """The wait after ``attempts`` failures: base, 2 x base, 4 x base, ... at most an hour."""
    return timedelta(seconds=min(base_seconds * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS))


def event_body(event: RefundEvent) -> bytes:
    return json.dumps({
        "eventId": event.event_id, "eventType": event.event_type, "entityId": event.refund_id,
        "sequence": event.sequence, "createdDate": event.created_date.isoformat(), "entity": json.loads(event.entity),
    }, separators=(",", ":")).encode()


# Events are numbered when written but seen when their transaction commits, so one may
# appear after a higher-numbered one: the search reaches this many numbers back.
ENQUEUE_LOOKBACK_EVENTS = 10_000


def enqueue(session: Session, name: str, subscription: WebhookSubscription, since: datetime) -> int:
    """A Pending delivery for each event of the subscribed types since ``since`` (the
    subscription's start) that has none yet.

    The search starts ``ENQUEUE_LOOKBACK_EVENTS`` positions before the newest event already
    queued, so its cost follows the new events, not the whole outbox. An event whose
    transaction commits after that many later events were written would be missed (a
    transaction open for minutes at full load); changing a subscription's event types
    applies to events from then on.
    """
    newest_queued = session.exec(
        select(RefundEvent.position)
        .join(WebhookDelivery, WebhookDelivery.event_id == RefundEvent.event_id)
        .where(WebhookDelivery.subscription == name)
        .order_by(col(WebhookDelivery.id).desc())
        .limit(1)
    ).first()
    recent = [col(RefundEvent.position) > newest_queued - ENQUEUE_LOOKBACK_EVENTS] if newest_queued is not None else []
    missing = session.exec(
        select(RefundEvent.event_id)
        .outerjoin(WebhookDelivery, and_(WebhookDelivery.event_id == RefundEvent.event_id, WebhookDelivery.subscription == name))
        .where(col(WebhookDelivery.id).is_(None), RefundEvent.created_date >= since,
               col(RefundEvent.event_type).in_(subscription.event_types), *recent)
        .order_by(col(RefundEvent.position))
    ).all()
    session.add_all([WebhookDelivery(subscription=name, event_id=event_id) for event_id in missing])
    return len(missing)


def deliver_due(name: str, subscription: WebhookSubscription, http: httpx.Client, *, limit: int = 500) -> dict[str, int]:
    """Attempt the subscription's due deliveries, oldest event first; counts per outcome."""
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    with session_scope() as session:
        due = session.exec(
            select(WebhookDelivery.id, RefundEvent)
            .join(RefundEvent, RefundEvent.event_id == WebhookDelivery.event_id)
            .where(WebhookDelivery.subscription == name, WebhookDelivery.status == "Pending",
                   WebhookDelivery.next_attempt_at <= utcnow())
            .order_by(col(RefundEvent.position)).limit(limit)
        ).all()
    secret = subscription.signing_secret.get_secret_value()
    for delivery_id, event in due:
        body = event_body(event)
        headers = {"Content-Type": "application/json", "OM-Event-Id": event.event_id, "OM-Event-Type": event.event_type,
                   "OM-Signature": signature_header(secret, body)}
        try:
            answer = http.post(subscription.url, content=body, headers=headers, timeout=subscription.timeout_seconds)
            error = None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}: {answer.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
        with session_scope() as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            delivery.attempts += 1
            if error is None:
                delivery.status, delivery.delivered_date, delivery.last_error = "Delivered", utcnow(), None
                counts["delivered"] += 1
            elif delivery.attempts >= subscription.max_attempts:
                delivery.status, delivery.last_error = "Failed", error
                counts["failed"] += 1
            else:
                delivery.next_attempt_at = utcnow() + backoff(delivery.attempts, subscription.backoff_seconds)
                delivery.last_error = error
                counts["retrying"] += 1
            session.add(delivery)
    return counts


class WebhookRun(ActionModel):
    subscription: str
    queued: int = Field(description="Deliveries queued for new events.")
    delivered: int
    retrying: int = Field(description="Failed this time; tried again after a backoff.")
    failed: int = Field(description="Given up after max_attempts.")


def _subscriptions(names: list[str] | None) -> list[tuple[str, WebhookSubscription, datetime]]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        documents = client.read_block_documents_by_type(block_type_slug="om-webhook-subscription")
    found = [(d.name, WebhookSubscription.load(d.name), d.created) for d in documents if names is None or d.name in names]
    missing = set(names or ()) - {name for name, _, _ in found}
    if missing:
        raise ValueError(f"no WebhookSubscription block named {', '.join(sorted(missing))}")
    return found


def redrive_failed(session: Session, name: str) -> int:
    """Give the subscription's Failed deliveries a fresh set of attempts (after an outage)."""
    failed = list(session.exec(select(WebhookDelivery).where(WebhookDelivery.subscription == name,
                                                             WebhookDelivery.status == "Failed")))
    for delivery in failed:
        delivery.status, delivery.attempts, delivery.next_attempt_at = "Pending", 0, utcnow()
        session.add(delivery)
    return len(failed)


@task(name="deliver-webhooks", persist_result=False)
def deliver_webhooks(subscriptions: list[str] | None = None, redrive: bool = False) -> list[WebhookRun]:
    """Queue new refund events for each subscription and attempt the due deliveries
    (with ``redrive``, Failed ones get a fresh set of attempts first).

    Example:
        ```python
        from prefect import flow
        from actions.webhooks import deliver_webhooks

        @flow
        def send_refund_webhooks():
            return deliver_webhooks(["accounting"])
        ```
    """
    logger = get_run_logger()
    runs = []
    with httpx.Client() as http:
        for name, subscription, since in _subscriptions(subscriptions):
            if not subscription.active:
                logger.info("subscription %s is paused", name)
                continue
            with session_scope() as session:
                if redrive and (again := redrive_failed(session, name)):
                    logger.info("subscription %s: %d failed deliveries queued again", name, again)
                queued = enqueue(session, name, subscription, since)
            counts = deliver_due(name, subscription, http)
            runs.append(WebhookRun(subscription=name, queued=queued, **counts))
            logger.info("webhooks to %s: %d queued, %s", name, queued, counts)
    return runs
