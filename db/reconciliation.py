"""The store's side of reconciliation: its records of the gateway's money, read in pages;
the findings, kept across runs; and the one correction it may make, recording a refund
made at the gateway outside the engine.

Each read takes a bounded page (a page of gateway records matched in three ``IN`` queries,
the store's unmatched records by keyset pages of an anti-join on ``reconciliation_match``),
so a run's memory does not grow with the number of records.
"""

from __future__ import annotations

import json
from contextlib import suppress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, Select, and_, delete, exists, insert, or_, text, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from db.announcements import announce
from db.ids import new_id
from db.ledger import CAPTURE_KEY_PREFIX, lock_order_summary
from db.models import (
    FindingResolution, FindingStatus, InteractionStatus, InteractionType, OrderPaymentSummary, Payment,
    PaymentAuthorization, PaymentGatewayLog, PaymentStatus, ProcessingMode, ReconciliationFinding, ReconciliationMatch,
    Refund, RefundStatus,
)
from db.outbox import CREATED, record_refund_event
from db.record_events import reconciliation_difference, refund_changed
from db.types import utcnow
from domain.errors import InvalidInputError
from domain.money import quantize
from domain.reconciliation import GatewayEntry, RecordKind, Settlement, Side

GATEWAY_FUNDING = "Gateway"
"""Refund.funding_source of a refund made at the gateway outside the engine and recorded by reconciliation."""

_REFUND_SETTLEMENT = {
    RefundStatus.PROCESSED: Settlement.SUCCEEDED, RefundStatus.FAILED: Settlement.FAILED,
    RefundStatus.PENDING: Settlement.PENDING, RefundStatus.UNKNOWN: Settlement.PENDING,
    RefundStatus.REVERSED: Settlement.REVERSED,
}
_PAYMENT_SETTLEMENT = {PaymentStatus.PROCESSED: Settlement.SUCCEEDED, PaymentStatus.DRAFT: Settlement.PENDING,
                       PaymentStatus.CANCELED: Settlement.FAILED}


@dataclass(frozen=True, slots=True)
class StoreRecord:
    """One store record of gateway money: a Refund, a Payment or a PaymentAuthorization."""

    object_name: str
    id: str
    kind: RecordKind
    amount: Decimal
    currency: str
    status: str
    settlement: Settlement
    since: datetime  # when it last changed (a refund's settlement moves LastModifiedDate)
    created: datetime
    gateway_reference: str | None
    idempotency_key: str | None
    parent_reference: str | None  # a refund's payment's, a capture's authorization's gateway id
    payment_id: str | None
    payment_gateway_id: str | None
    order_summary_id: str | None

    @property
    def side(self) -> Side:
        return Side(amount=self.amount, currency=self.currency, settlement=self.settlement, since=self.since)


def _refunds() -> Select:
    return (select(Refund, Payment.gateway_ref_number, OrderPaymentSummary.order_summary_id)
            .join(Payment, col(Refund.payment_id) == col(Payment.id))
            .join(OrderPaymentSummary, col(Refund.order_payment_summary_id) == col(OrderPaymentSummary.id)))


def _payments() -> Select:
    return (select(Payment, PaymentAuthorization.gateway_ref_number, OrderPaymentSummary.order_summary_id)
            .outerjoin(PaymentAuthorization, col(Payment.payment_authorization_id) == col(PaymentAuthorization.id))
            .outerjoin(OrderPaymentSummary, col(Payment.order_payment_summary_id) == col(OrderPaymentSummary.id)))


def _authorizations() -> Select:
    return (select(PaymentAuthorization, OrderPaymentSummary.order_summary_id)
            .outerjoin(OrderPaymentSummary,
                       col(PaymentAuthorization.order_payment_summary_id) == col(OrderPaymentSummary.id)))


def _of_refund(row: Row | tuple) -> StoreRecord:
    refund, charge, order_summary_id = row
    return StoreRecord(
        object_name="Refund", id=refund.id, kind=RecordKind.REFUND, amount=refund.amount, currency=refund.currency_iso_code,
        status=str(refund.status), settlement=_REFUND_SETTLEMENT[RefundStatus(refund.status)],
        since=refund.last_modified_date, created=refund.created_date, gateway_reference=refund.gateway_ref_number,
        idempotency_key=refund.idempotency_key, parent_reference=charge, payment_id=refund.payment_id,
        payment_gateway_id=refund.payment_gateway_id, order_summary_id=order_summary_id,
    )


def with_context(session: Session, records: Sequence[StoreRecord]) -> list[StoreRecord]:
    """``records`` with what ``match_entries`` leaves out of a refund, read by primary key for
    the few that need it (a finding): its payment's gateway id and its order summary."""
    refunds = [r for r in records if r.object_name == "Refund" and r.order_summary_id is None]
    if not refunds:
        return list(records)
    rows = session.exec(select(Refund.id, Payment.gateway_ref_number, OrderPaymentSummary.order_summary_id)
                        .join(Payment, col(Refund.payment_id) == col(Payment.id))
                        .join(OrderPaymentSummary, col(Refund.order_payment_summary_id) == col(OrderPaymentSummary.id))
                        .where(col(Refund.id).in_([r.id for r in refunds]))).all()
    context = {refund_id: (charge, order) for refund_id, charge, order in rows}
    return [replace(r, parent_reference=context[r.id][0], order_summary_id=context[r.id][1]) if r.id in context else r
            for r in records]


def _of_payment(row: Row | tuple) -> StoreRecord:
    payment, authorization, order_summary_id = row
    key = f"{CAPTURE_KEY_PREFIX}{payment.id}" if payment.payment_authorization_id else None
    return StoreRecord(
        object_name="Payment", id=payment.id, kind=RecordKind.PAYMENT, amount=payment.amount,
        currency=payment.currency_iso_code, status=str(payment.status),
        settlement=_PAYMENT_SETTLEMENT[PaymentStatus(payment.status)], since=payment.created_date,
        created=payment.created_date, gateway_reference=payment.gateway_ref_number, idempotency_key=key,
        parent_reference=authorization, payment_id=payment.id, payment_gateway_id=payment.payment_gateway_id,
        order_summary_id=order_summary_id,
    )


def _of_authorization(row: Row | tuple) -> StoreRecord:
    authorization, order_summary_id = row
    return StoreRecord(
        object_name="PaymentAuthorization", id=authorization.id, kind=RecordKind.AUTHORIZATION,
        amount=authorization.amount, currency=authorization.currency_iso_code, status=str(authorization.status),
        settlement=_PAYMENT_SETTLEMENT[PaymentStatus(authorization.status)], since=authorization.created_date,
        created=authorization.created_date, gateway_reference=authorization.gateway_ref_number, idempotency_key=None,
        parent_reference=None, payment_id=None, payment_gateway_id=authorization.payment_gateway_id,
        order_summary_id=order_summary_id,
    )


def match_entries(session: Session, entries: Sequence[GatewayEntry], gateway_ids: Sequence[str]) -> list[StoreRecord | None]:
    """The store's record of each gateway record (None where it has none), in three queries
    (a refund without its payment's gateway id and order: ``with_context`` adds them):
    a refund by the key it was sent with or by the gateway's id; a charge or capture by the
    gateway's id (or an alias: a charge's payment intent) or, for a capture, by its key;
    else an authorization by the gateway's id. Only records of ``gateway_ids`` are matched
    by the gateway's id (another account's ids may repeat); keys are the engine's own."""
    refund_entries = [e for e in entries if e.kind is RecordKind.REFUND]
    charge_entries = [e for e in entries if e.kind is not RecordKind.REFUND]
    keys = {e.idempotency_key for e in refund_entries if e.idempotency_key}
    references = {e.reference for e in refund_entries}
    refunds = [_of_refund((row, None, None)) for row in session.execute(select(Refund.__table__).where(or_(
        col(Refund.idempotency_key).in_(keys),
        and_(col(Refund.gateway_ref_number).in_(references), col(Refund.payment_gateway_id).in_(gateway_ids),
             Refund.processing_mode != ProcessingMode.EXTERNAL),
    )))] if refund_entries else []
    charge_references = {name for e in charge_entries for name in (e.reference, *e.aliases)}
    capture_ids = {e.idempotency_key[len(CAPTURE_KEY_PREFIX):] for e in charge_entries
                   if e.idempotency_key and e.idempotency_key.startswith(CAPTURE_KEY_PREFIX)}
    payments, authorizations = [], []
    if charge_entries:
        payments = [_of_payment(row) for row in session.exec(_payments().where(
            col(Payment.payment_gateway_id).in_(gateway_ids), Payment.processing_mode != ProcessingMode.EXTERNAL,
            or_(col(Payment.gateway_ref_number).in_(charge_references), col(Payment.id).in_(capture_ids)),
        ).order_by(col(Payment.created_date), col(Payment.id)))]
        authorizations = [_of_authorization(row) for row in session.exec(_authorizations().where(
            col(PaymentAuthorization.payment_gateway_id).in_(gateway_ids),
            PaymentAuthorization.processing_mode != ProcessingMode.EXTERNAL,
            col(PaymentAuthorization.gateway_ref_number).in_(charge_references),
        ).order_by(col(PaymentAuthorization.created_date), col(PaymentAuthorization.id)))]
    by_key = {r.idempotency_key: r for r in [*refunds, *payments] if r.idempotency_key}
    by_reference: dict[tuple[bool, str], StoreRecord] = {}
    # A payment wins over the authorization it captured; a Processed payment over a Canceled
    # or Draft one of the same charge; else the oldest.
    processed_last = sorted(payments, key=lambda p: p.settlement is Settlement.SUCCEEDED)
    for record in [*authorizations, *processed_last, *refunds]:
        if record.gateway_reference:
            by_reference[(record.kind is RecordKind.REFUND, record.gateway_reference)] = record

    def store_record(entry: GatewayEntry) -> StoreRecord | None:
        if entry.idempotency_key and (found := by_key.get(entry.idempotency_key)):
            return found
        is_refund = entry.kind is RecordKind.REFUND
        for name in (entry.reference, *entry.aliases):
            if found := by_reference.get((is_refund, name)):
                return found
        return None

    return [store_record(entry) for entry in entries]


def remember_matches(session: Session, run_id: str, matches: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Note the store records this run matched, each with the gateway record it matched
    (``(record_id, gateway_reference)``), so the store's side skips them. Returns the
    duplicates: a store record already noted with another gateway record (in this page or
    an earlier one) -> the reference of the first. A resumed run notes again what its first
    attempt noted, with the same references: no duplicate."""
    first: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    for record_id, reference in matches:
        if first.setdefault(record_id, reference) != reference:
            duplicates[record_id] = first[record_id]
    if not first:
        return duplicates
    rows = [{"run_id": run_id, "record_id": record_id, "gateway_reference": reference, "noted_date": utcnow()}
            for record_id, reference in sorted(first.items())]
    # The common case: none noted before, one plain executemany. A conflict (a resumed run, or a
    # store record the gateway holds twice) falls through to comparing with what was noted.
    with suppress(IntegrityError), session.begin_nested():
        session.execute(insert(ReconciliationMatch), rows)
        return duplicates
    noted = dict(session.exec(select(ReconciliationMatch.record_id, ReconciliationMatch.gateway_reference).where(
        ReconciliationMatch.run_id == run_id, col(ReconciliationMatch.record_id).in_(list(first)))).all())
    for record_id, reference in first.items():
        if record_id in noted and noted[record_id] != reference:
            duplicates[record_id] = noted[record_id]
    if rows := [row for row in rows if row["record_id"] not in noted]:
        session.execute(insert(ReconciliationMatch), rows)
    return duplicates


def refresh_match_statistics(session: Session) -> None:
    """Tell PostgreSQL's planner how many notes there now are (the table starts each run
    nearly empty, and a plan made for that walks every store record of the window)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE reconciliation_match"))


STALE_NOTES = timedelta(days=1)
"""A run's match notes older than this are a killed run's (no run takes a day)."""


def forget_matches(session: Session, run_id: str, *, stale: bool = False) -> None:
    """Delete this run's notes (``stale``: other runs' notes older than ``STALE_NOTES``, which
    a killed run left; a run still going that lost them would only ask the gateway again)."""
    if stale:
        session.execute(delete(ReconciliationMatch).where(
            col(ReconciliationMatch.run_id) != run_id, col(ReconciliationMatch.noted_date) < utcnow() - STALE_NOTES))
    else:
        session.execute(delete(ReconciliationMatch).where(col(ReconciliationMatch.run_id) == run_id))


def unmatched_store_records(
    session: Session, *, run_id: str, gateway_ids: Sequence[str], since: datetime, until: datetime,
    direct_charges: bool, after: tuple[str, datetime, str] | None, limit: int,
) -> list[StoreRecord]:
    """The next page of the store's refunds, then payments, of ``gateway_ids`` made in
    ``[since, until)`` that this run matched to no gateway record, whatever their status
    (every store record of the window is read, so a run may resolve any finding about one);
    captures only unless the gateway lists ``direct_charges``; never an External record,
    whose money moved outside the gateways. ``after`` is the last record of the previous
    page: (object name, created, id)."""
    def not_matched(record_id):
        return ~exists().where(ReconciliationMatch.run_id == run_id, col(ReconciliationMatch.record_id) == record_id)

    records: list[StoreRecord] = []
    if after is None or after[0] == "Refund":
        statement = _refunds().where(
            col(Refund.payment_gateway_id).in_(gateway_ids), Refund.created_date >= since, Refund.created_date < until,
            Refund.processing_mode != ProcessingMode.EXTERNAL, not_matched(col(Refund.id)),
        ).order_by(col(Refund.created_date), col(Refund.id)).limit(limit)
        if after is not None:
            statement = statement.where(tuple_(Refund.created_date, Refund.id) > tuple_(after[1], after[2]))
        records = [_of_refund(row) for row in session.exec(statement)]
        if records:
            return records
        after = None
    statement = _payments().where(
        col(Payment.payment_gateway_id).in_(gateway_ids), Payment.created_date >= since, Payment.created_date < until,
        Payment.processing_mode != ProcessingMode.EXTERNAL, not_matched(col(Payment.id)),
    ).order_by(col(Payment.created_date), col(Payment.id)).limit(limit)
    if not direct_charges:
        statement = statement.where(col(Payment.payment_authorization_id).is_not(None))
    if after is not None:
        statement = statement.where(tuple_(Payment.created_date, Payment.id) > tuple_(after[1], after[2]))
    return [_of_payment(row) for row in session.exec(statement)]


# --- findings ---------------------------------------------------------------------------


def fingerprint(difference: str, kind: str, gateway_reference: str | None, store_record_id: str | None) -> str:
    """What makes two runs' findings the same finding: the difference and the records it is about."""
    return f"{difference}|{kind}|{gateway_reference or '-'}|{store_record_id or '-'}"


def save_findings(session: Session, findings: Sequence[dict[str, Any]], *, run_id: str) -> tuple[int, int]:
    """Write this run's findings (each a dict of ReconciliationFinding fields with its
    ``fingerprint``): a new one is inserted and announced (``om.reconciliation.difference``);
    one still open is seen again (LastSeen moves, nothing is announced); one resolved earlier
    is opened again and announced again. Returns (new or reopened, seen again)."""
    if not findings:
        return 0, 0
    now = utcnow()
    known = {f.fingerprint: f for f in session.exec(select(ReconciliationFinding).where(
        col(ReconciliationFinding.fingerprint).in_([f["fingerprint"] for f in findings])))}
    opened = seen = 0
    for values in findings:
        finding = known.get(values["fingerprint"])
        if finding is None:
            finding = ReconciliationFinding(id=new_id("ReconciliationFinding"), first_seen_run_id=run_id,
                                            last_seen_run_id=run_id, first_seen_date=now, last_seen_date=now, **values)
            known[finding.fingerprint] = finding
        elif finding.status == FindingStatus.RESOLVED and values.get("status", FindingStatus.OPEN) == FindingStatus.OPEN:
            finding.sqlmodel_update({**values, "resolution": None, "resolved_date": None, "resolved_run_id": None,
                                     "times_opened": finding.times_opened + 1})
        elif finding.last_seen_run_id == run_id or finding.status == FindingStatus.RESOLVED:
            continue  # told already by this run (a record listed twice), or resolved for good
        else:
            finding.sqlmodel_update({**values, "last_seen_run_id": run_id, "last_seen_date": now})
            session.add(finding)
            seen += 1
            continue
        finding.last_seen_run_id, finding.last_seen_date = run_id, now
        session.add(finding)
        opened += 1
        announce(session, lambda f=finding: reconciliation_difference(f))
    return opened, seen


def close_findings(session: Session, *, account: str, since: datetime, until: datetime, run_id: str) -> int:
    """Resolve the open findings of ``account`` about records made in ``[since, until)`` that
    this run, which read all of them, no longer found. Returns how many."""
    result = session.execute(
        update(ReconciliationFinding)
        .where(ReconciliationFinding.gateway_account == account, ReconciliationFinding.status == FindingStatus.OPEN,
               ReconciliationFinding.occurred_date >= since, ReconciliationFinding.occurred_date < until,
               ReconciliationFinding.last_seen_run_id != run_id)
        .values(status=FindingStatus.RESOLVED, resolution=FindingResolution.NOT_FOUND_AGAIN, resolved_date=utcnow(),
                resolved_run_id=run_id)
    )
    return result.rowcount or 0


# --- the one correction -----------------------------------------------------------------


def charge_of_refund(session: Session, entry: GatewayEntry, gateway_ids: Sequence[str]) -> Payment | None:
    """The store's payment of the charge a gateway refund refunds, if it knows it."""
    references = [r for r in (entry.parent_reference, *entry.parent_aliases) if r]
    if not references:
        return None
    return session.exec(select(Payment).where(
        col(Payment.payment_gateway_id).in_(gateway_ids), col(Payment.gateway_ref_number).in_(references),
        Payment.processing_mode != ProcessingMode.EXTERNAL,
    ).order_by(col(Payment.status) != PaymentStatus.PROCESSED, col(Payment.created_date), col(Payment.id))).first()


def releases_authorization(session: Session, entry: GatewayEntry, gateway_ids: Sequence[str]) -> bool:
    """Whether a gateway refund the store lacks, sent with no key, is the gateway releasing
    the uncaptured part of an authorization the store holds (Stripe makes a refund of the
    rest when less than the authorized amount is captured, and of all of it when an
    uncaptured charge is released), not money paid back: its amount is exactly what the
    authorization holds beyond its Processed captures."""
    references = [r for r in (entry.parent_reference, *entry.parent_aliases) if r]
    if entry.idempotency_key is not None or not references:
        return False
    authorization = session.exec(select(PaymentAuthorization).where(
        col(PaymentAuthorization.payment_gateway_id).in_(gateway_ids),
        col(PaymentAuthorization.gateway_ref_number).in_(references))).first()
    if authorization is None:
        return False
    captured = sum(session.exec(select(Payment.amount).where(
        Payment.payment_authorization_id == authorization.id, Payment.status == PaymentStatus.PROCESSED)).all(), Decimal(0))
    return entry.amount == authorization.amount - captured


def recorded_key(entry: GatewayEntry) -> str:
    """The idempotency key of the refund recorded for a gateway refund: one per gateway refund, ever."""
    return f"om-gateway-{entry.reference}"


def record_gateway_refund(session: Session, entry: GatewayEntry, payment_id: str, *, run_id: str) -> Refund | str:
    """Record ``entry``, a succeeded refund made at the gateway outside the engine, as a
    Processed refund of payment ``payment_id``, in one transaction under its order's lock:
    the payment's and its summary's RefundedAmount grow by it at once, so no later refund
    can pay that money out again. Its gateway log row says where it came from.

    Returns the refund (the one recorded before, if a run recorded it already), or why it
    was not recorded (then nothing was written)."""
    ops_id = session.exec(select(Payment.order_payment_summary_id).where(Payment.id == payment_id)).first()
    if ops_id is None:
        return "the payment is not in an order payment summary"
    order_summary_id = session.exec(select(OrderPaymentSummary.order_summary_id).where(OrderPaymentSummary.id == ops_id)).one()
    lock_order_summary(session, order_summary_id)  # then its records, read after the lock is held
    key = recorded_key(entry)
    if (earlier := session.exec(select(Refund).where(Refund.idempotency_key == key)).first()) is not None:
        return earlier
    payment = session.exec(select(Payment).where(Payment.id == payment_id).with_for_update()
                           .execution_options(populate_existing=True)).one()
    ops = session.exec(select(OrderPaymentSummary).where(OrderPaymentSummary.id == ops_id).with_for_update()
                       .execution_options(populate_existing=True)).one()
    if entry.currency.upper() != payment.currency_iso_code:
        return f"the gateway refunded {entry.currency}, the payment is in {payment.currency_iso_code}"
    if payment.status != PaymentStatus.PROCESSED:
        return f"the payment is {payment.status}"
    try:
        amount = quantize(entry.amount, payment.currency_iso_code)
    except InvalidInputError as exc:  # more places than the currency has: a person decides
        return str(exc)
    if amount > payment.refundable_amount:
        return (f"{amount} {payment.currency_iso_code} is more than the payment has left to refund "
                f"({payment.refundable_amount}, pending refunds counted): a person decides")
    now = utcnow()
    refund = Refund(
        id=new_id("Refund"), order_payment_summary_id=ops.id, payment_id=payment.id, amount=amount,
        currency_iso_code=payment.currency_iso_code, status=RefundStatus.PROCESSED, funding_source=GATEWAY_FUNDING,
        idempotency_key=key, gateway_ref_number=entry.reference, gateway_result_code=entry.status,
        sf_result_code="Success", gateway_message="Made at the gateway outside the engine; recorded by reconciliation",
        note=f"Recorded by reconcile-gateway run {run_id}", background_operation_id=run_id,
        processing_mode=payment.processing_mode, payment_gateway_id=payment.payment_gateway_id,
        created_date=now, last_modified_date=now,
    )
    payment.refunded_amount += amount
    ops.refunded_amount += amount
    session.add_all([refund, payment, ops, PaymentGatewayLog(
        id=new_id("PaymentGatewayLog"), payment_gateway_id=payment.payment_gateway_id, reference_entity_id=refund.id,
        interaction_type=InteractionType.REFUND, interaction_status=InteractionStatus.SUCCESS, sf_result_code="Success",
        gateway_result_code=entry.status, gateway_message="Refund made at the gateway outside the engine",
        sf_ref_number=key, gateway_ref_number=entry.reference, background_operation_id=run_id,
        request=json.dumps({"recordedBy": "reconcile-gateway", "runId": run_id}),
        response=json.dumps(entry.raw, default=str),
    )])
    session.flush()
    record_refund_event(session, refund, CREATED)
    announce(session, lambda: refund_changed(refund, "recorded-from-gateway", order_summary_id=order_summary_id))
    return refund
