"""Refund events leave the engine: signed webhooks to a receiver on loopback (repeated
deliveries de-duplicated by the subscriber), and the accounting export matching the
store exactly. On each backend, against the real Prefect server."""

from __future__ import annotations

import json
import threading
import uuid
from decimal import Decimal as D
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlmodel import col, select

from actions.payment_refunds import RefundPaymentInput, reserve_payment_refund, reverse_refund, send_reserved_refund
from actions.webhooks import verify_signature
from blocks import AccountingExport, SandboxGateway, WebhookSubscription
from db.engine import session_scope
from db.models import PaymentCreate, Refund, RefundEvent, WebhookDelivery
from db.outbox import refund_entity
from db.sobjects import create_payment
from gateways.sandbox import SandboxGatewayAdapter
from tests.factories import make_order
from tests.ledger import assert_ledger_invariants

GATEWAY = "test-refund-events-gateway"
SECRET = "whsec_test_only"


@pytest.fixture(scope="module", autouse=True)
def scripted_gateway(prefect_api):
    SandboxGateway(outcomes_by_amount={"13.13": "decline"}).save(GATEWAY, overwrite=True)


class Receiver:
    """A subscriber on loopback: checks signatures, keeps every receipt, and applies each
    event once (by eventId) and only if newer than what it holds (by sequence). With
    ``drop_ack_every`` it accepts an event but answers 500 on every n-th receipt, as if
    the answer were lost: the engine sends that event again."""

    def __init__(self, *, drop_ack_every: int = 0, always_fail: bool = False):
        self.receipts, self.bad_signatures, self.applied, self.state = [], 0, set(), {}
        self.drop_ack_every, self.always_fail = drop_ack_every, always_fail
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not verify_signature(SECRET, self.headers.get("OM-Signature", ""), body):
                    receiver.bad_signatures += 1
                    return self._answer(401)
                event = json.loads(body)
                assert self.headers["OM-Event-Id"] == event["eventId"]
                receiver.receipts.append(event)
                if receiver.always_fail:
                    return self._answer(503)
                if event["eventId"] not in receiver.applied:
                    receiver.applied.add(event["eventId"])
                    held = receiver.state.get(event["entityId"])
                    if held is None or held["revision"] < event["sequence"]:
                        receiver.state[event["entityId"]] = event["entity"]
                lost = receiver.drop_ack_every and len(receiver.receipts) % receiver.drop_ack_every == 0
                self._answer(500 if lost else 204)

            def _answer(self, status):
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                """Quiet: the test reads the receipts, not an access log."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    made = []

    def make(**kwargs):
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def subscribe():
    """Save a subscription for the test; delete it after, so no scheduled delivery (the e2e
    engine serves deliver-webhooks) keeps calling this test's dead receiver."""
    names = []

    def make(url, **fields) -> str:
        names.append(f"test-{uuid.uuid4().hex[:10]}")
        WebhookSubscription(url=url, signing_secret=SECRET, backoff_seconds=0.01, **fields).save(names[-1])
        return names[-1]

    yield make
    for name in names:
        WebhookSubscription.delete(name)


def _refund_activity(store) -> list[str]:
    """A charge refunded three ways: succeeded, declined, succeeded then reversed."""
    with session_scope(store) as s:
        order = make_order(s, payments=[[]], gateway_block=GATEWAY)
        charge = create_payment(session=s, obj_in=PaymentCreate(
            order_payment_summary_id=order.summaries[0], payment_gateway_id=order.gateway_id, amount=D("100.00"))).id
    ids = []
    for amount in ("10.00", "13.13", "20.00"):
        with session_scope(store) as s:
            ids.append(reserve_payment_refund(session=s, request=RefundPaymentInput(charge_id=charge, amount=D(amount))).id)
        send_reserved_refund(ids[-1], resuming=False)
    with session_scope(store) as s:
        key = s.get(Refund, ids[2]).idempotency_key
    SandboxGatewayAdapter().reverse_refund(key)
    with session_scope(store) as s:
        reverse_refund(session=s, refund_id=ids[2], gateway_message="chargeback of the refund")
    return ids


def _events_of(store, refund_ids):
    with session_scope(store) as s:
        return list(s.exec(select(RefundEvent).where(col(RefundEvent.refund_id).in_(refund_ids))
                           .order_by(col(RefundEvent.position))))


def _deliver(name, rounds=1):
    from flows.refund_events import deliver_refund_webhooks

    return [deliver_refund_webhooks((name,)) for _ in range(rounds)]


def test_every_event_reaches_the_subscriber_once_after_deduplication(store, receiver, subscribe):
    hooks = receiver(drop_ack_every=3)
    name = subscribe(hooks.url)
    refund_ids = _refund_activity(store)
    events = _events_of(store, refund_ids)
    assert [e.event_type for e in events].count("RefundCreated") == 3 and len(events) == 7  # 3 created, 3 settled, 1 reversed
    for _ in range(6):  # each run retries what the lost acknowledgements left pending
        _deliver(name)
    assert hooks.bad_signatures == 0
    assert len(hooks.receipts) > len(events)  # some events arrived twice...
    assert hooks.applied == {e.event_id for e in events}  # ...each applied once
    with session_scope(store) as s:
        deliveries = list(s.exec(select(WebhookDelivery).where(WebhookDelivery.subscription == name)))
        assert {d.status for d in deliveries} == {"Delivered"} and len(deliveries) == len(events)
        latest = {rid: refund_entity(s.get(Refund, rid)) for rid in refund_ids}
    assert hooks.state == latest  # the subscriber ends with the store's view of each refund
    assert [hooks.state[rid]["status"] for rid in refund_ids] == ["SUCCEEDED", "FAILED", "REVERSED"]
    for rid in refund_ids:  # per refund, events arrive in sequence order the first time
        firsts = []
        for receipt in hooks.receipts:
            if receipt["entityId"] == rid and receipt["sequence"] not in firsts:
                firsts.append(receipt["sequence"])
        assert firsts == sorted(firsts)
    assert_ledger_invariants(store)


def test_the_signing_secret_never_reaches_logs_parameters_artifacts_or_events(store, receiver, subscribe):
    from tests.secrets_scan import assert_nowhere, readable_places

    from flows.refund_events import deliver_refund_webhooks

    hooks = receiver()
    name = subscribe(hooks.url)
    _refund_activity(store)
    state = deliver_refund_webhooks((name,), return_state=True)
    assert state.is_completed()
    assert hooks.receipts and hooks.bad_signatures == 0  # signed with the secret, and delivered
    assert_nowhere([SECRET], readable_places(state.state_details.flow_run_id))


def test_a_dead_endpoint_is_retried_with_backoff_then_given_up(store, receiver, subscribe):
    hooks = receiver(always_fail=True)
    name = subscribe(hooks.url, max_attempts=3, event_types=["RefundCreated"])
    refund_ids = _refund_activity(store)
    import time

    for _ in range(5):
        _deliver(name)
        time.sleep(0.05)  # past the 0.01 s, 0.02 s backoffs
    with session_scope(store) as s:
        deliveries = list(s.exec(select(WebhookDelivery).where(WebhookDelivery.subscription == name)))
    assert len(deliveries) == 3  # RefundCreated only
    assert {(d.status, d.attempts) for d in deliveries} == {("Failed", 3)}
    assert all("503" in d.last_error for d in deliveries)
    assert len(hooks.receipts) == 9 and {r["entityId"] for r in hooks.receipts} == set(refund_ids)

    hooks.always_fail = False  # the endpoint is back: an operator re-drives what failed
    from flows.refund_events import deliver_refund_webhooks

    deliver_refund_webhooks((name,), redrive_failed=True)
    with session_scope(store) as s:
        statuses = {d.status for d in s.exec(select(WebhookDelivery).where(WebhookDelivery.subscription == name))}
    assert statuses == {"Delivered"} and len(hooks.applied) == 3


def test_a_bad_signature_is_rejected_by_the_subscriber():
    body = b'{"eventId":"x"}'
    from actions.webhooks import signature_header

    good = signature_header(SECRET, body)
    assert verify_signature(SECRET, good, body)
    assert not verify_signature(SECRET, good.split("v1=")[0] + "v1=é", body)  # non-ASCII: refused, not a crash
    assert not verify_signature(SECRET, good, body + b" ")
    assert not verify_signature("another secret", good, body)
    assert not verify_signature(SECRET, signature_header(SECRET, body, timestamp=1), body)  # too old: a replay
    assert not verify_signature(SECRET, "garbage", body)


def test_webhook_urls_must_be_https_or_loopback():
    for url in ("http://ledger.example/hooks", "http://localhost.evil.example/hooks", "ftp://127.0.0.1/x", "https://"):
        with pytest.raises(ValueError):
            WebhookSubscription(url=url, signing_secret=SECRET)
    assert WebhookSubscription(url="http://localhost:8080/hooks", signing_secret=SECRET).url
    assert WebhookSubscription(url="https://ledger.example/hooks", signing_secret=SECRET).url


def test_the_accounting_export_matches_the_store_exactly(store, tmp_path, prefect_api):
    from flows.refund_events import export_refunds_to_accounting

    _refund_activity(store)
    ledger_path = tmp_path / "ledger.json"
    block = f"test-export-{uuid.uuid4().hex[:8]}"
    AccountingExport(path=str(ledger_path), settle_seconds=0).save(block)

    def store_view():
        with session_scope(store) as s:
            return {r.id: refund_entity(r) for r in s.exec(select(Refund))}

    first = export_refunds_to_accounting(block)
    assert first.backfilled == len(store_view()) and first.backfilled > 0
    assert json.loads(ledger_path.read_text())["refunds"] == store_view()

    changed = _refund_activity(store)  # new refunds, settlements and a reversal after the backfill
    second = export_refunds_to_accounting(block)
    assert second.backfilled == 0 and second.events_applied == 7
    ledger = json.loads(ledger_path.read_text())
    assert ledger["refunds"] == store_view()
    assert ledger["refunds"][changed[2]]["status"] == "REVERSED"

    third = export_refunds_to_accounting(block)
    assert (third.events_read, third.events_applied) == (0, 0)
    assert json.loads(ledger_path.read_text()) == ledger
    from actions.accounting_export import compare

    assert compare(AccountingExport.load(block)) == []
