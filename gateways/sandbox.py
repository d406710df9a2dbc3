"""A sandbox gateway whose answers are scripted, so tests and demos reach every branch.

Refunds and captures alike get the outcome scripted for their amount
(``outcomes_by_amount``), else ``default_outcome``:

* approve: the request is booked and approved;
* decline: nothing is booked; result code ``card_declined``;
* error: nothing is booked; result code ``processing_error``;
* timeout: the request **is** booked but the answer is lost, as with a real network
  timeout after the gateway acted. ``lookup_refund``/``lookup_capture`` later tell the truth.

Like a real gateway it honours idempotency keys: a repeated key replays the first answer
and never books twice. With ``honour_idempotency_keys=False`` it behaves like gateways
(and fakes such as localstripe) that ignore them: every call books anew, so tests can show
that the engine's own guarantees do not lean on the gateway's.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

from sqlalchemy import or_, select, text, tuple_
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from domain.reconciliation import GatewayEntry, RecordKind, Settlement
from gateways.contract import CaptureCommand, GatewayOutcome, GatewayResult, RefundCommand
from gateways.sandbox_engine import books_engine, books_url
from gateways.sandbox_ledger import SandboxGatewayBooking, SandboxGatewayCapture, SandboxGatewayRefund

_SCRIPT = {
    "approve": (GatewayOutcome.APPROVED, "approved", "Refund approved"),
    "decline": (GatewayOutcome.DECLINED, "card_declined", "The refund was declined by the issuer"),
    "error": (GatewayOutcome.ERROR, "processing_error", "The gateway failed to process the refund"),
    "timeout": (GatewayOutcome.TIMEOUT, None, "No answer from the gateway before the timeout"),
    # A 5xx: the gateway did nothing, but the caller cannot know that (an unknown outcome, as a timeout).
    "unavailable": (GatewayOutcome.TIMEOUT, None, "The gateway answered 503 Service Unavailable"),
}
SCRIPTED_OUTCOMES = tuple(_SCRIPT)


class SandboxGatewayAdapter:
    """The sandbox adapter.

    Args:
        store_url: database holding the sandbox's books (the store's, by default); the sandbox
            creates its tables there if they are missing.
        default_outcome: one of approve, decline, error, timeout, unavailable (a 5xx: nothing booked).
        outcomes_by_amount: amount (as a decimal string) -> outcome, overriding the default.
        latency_seconds: simulated time the gateway takes to answer each call (a refund, a capture,
            a page of its records, a lookup).
    """

    def __init__(
        self,
        *,
        store_url: str | None = None,
        default_outcome: str = "approve",
        outcomes_by_amount: dict[str, str] | None = None,
        latency_seconds: float = 0.0,
        honour_idempotency_keys: bool = True,
    ):
        self._books_url = books_url(store_url)
        self._default = default_outcome
        self._by_amount = {Decimal(k): v for k, v in (outcomes_by_amount or {}).items()}
        self._latency = latency_seconds
        self._honour_keys = honour_idempotency_keys

    @functools.cached_property
    def _engine(self) -> Engine:
        return books_engine(self._books_url)

    def _wait(self) -> None:
        """The time the gateway takes to answer a call (``latency_seconds``)."""
        if self._latency:
            time.sleep(self._latency)

    def _scripted(self, amount: Decimal) -> str:
        return self._by_amount.get(amount, self._default)

    def refund(self, command: RefundCommand) -> GatewayResult:
        return self._book(SandboxGatewayRefund, "re_sbx_", command.idempotency_key, command.charge_reference,
                          command.amount, command.currency, command.metadata)

    def lookup_refund(self, command: RefundCommand) -> GatewayResult | None:
        return self._lookup(SandboxGatewayRefund, command.idempotency_key)

    def capture(self, command: CaptureCommand) -> GatewayResult:
        return self._book(SandboxGatewayCapture, "ch_sbx_", command.idempotency_key, command.authorization_reference,
                          command.amount, command.currency, command.metadata)

    def lookup_capture(self, command: CaptureCommand) -> GatewayResult | None:
        return self._lookup(SandboxGatewayCapture, command.idempotency_key)

    def _book(self, books: type[SandboxGatewayBooking], prefix: str, key: str, reference: str, amount: Decimal,
              currency: str, metadata: dict[str, str]) -> GatewayResult:
        request = {"idempotency_key": key, "reference": reference, "amount": str(amount), "currency": currency,
                   "metadata": dict(metadata)}
        self._wait()
        scripted = self._scripted(amount)
        outcome, code, message = _SCRIPT[scripted]
        if scripted == "unavailable":  # it never reached the books
            return GatewayResult(outcome=outcome, message=message, request=request, response={"status": 503})
        acted = outcome in (GatewayOutcome.APPROVED, GatewayOutcome.TIMEOUT)
        row = books(
            idempotency_key=key, charge_reference=reference, amount=amount, currency=currency,
            outcome="approve" if outcome is GatewayOutcome.TIMEOUT else scripted,
            gateway_reference=f"{prefix}{secrets.token_hex(8)}" if acted else None,
            result_code=code or "approved", message=message,
        )
        with Session(self._engine, expire_on_commit=False) as session:
            if self._honour_keys and self._engine.dialect.name == "postgresql":
                # Two calls with one key must not both book (SQLite's BEGIN IMMEDIATE already serializes).
                session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
            existing = self._first_booking(session, books, key) if self._honour_keys else None
            if existing is not None:
                return self._answer(existing, request, replayed=True)
            session.add(row)
            session.commit()
        if outcome is GatewayOutcome.TIMEOUT:
            return GatewayResult(outcome=outcome, message=message, request=request, response={})
        return self._answer(row, request, replayed=False)

    def reverse_refund(self, idempotency_key: str, message: str = "The refund failed after it was approved") -> bool:
        """Make an approved refund fail afterwards, as a card network sometimes does (the
        test hook behind seed 003's REVERSED); True if there was one to reverse."""
        with Session(self._engine) as session:
            row = self._first_booking(session, SandboxGatewayRefund, idempotency_key)
            if row is None or row.outcome != "approve":
                return False
            row.outcome, row.result_code, row.message = "reversed", "refund_reversed", message
            session.add(row)
            session.commit()
            return True

    # --- what reconciliation reads (gateways.contract.ReconcilableGateway) ------------------

    lists_direct_charges = False  # the books hold only what the engine sent: refunds and captures
    PAGE_SIZE = 1000

    def list_entries(self, *, since: datetime, until: datetime) -> Iterator[GatewayEntry]:
        """Every refund and capture booked in ``[since, until)``, in keyset pages of PAGE_SIZE."""
        for books in (SandboxGatewayRefund, SandboxGatewayCapture):
            after: tuple[datetime, int] | None = None
            while True:
                table = books.__table__  # plain rows: a page of entries needs no ORM objects
                statement = (select(table).where(books.created_date >= since, books.created_date < until)
                             .order_by(books.created_date, books.id).limit(self.PAGE_SIZE))
                if after is not None:
                    statement = statement.where(tuple_(books.created_date, books.id) > tuple_(*after))
                self._wait()
                with self._engine.connect() as connection:
                    rows = connection.execute(statement).all()
                yield from (_entry(row, books) for row in rows)
                if len(rows) < self.PAGE_SIZE:
                    break
                after = (rows[-1].created_date, rows[-1].id)

    def find_entry(self, kind: RecordKind, *, reference: str | None, idempotency_key: str | None,
                   parent_reference: str | None = None) -> GatewayEntry | None:
        books = {RecordKind.REFUND: SandboxGatewayRefund, RecordKind.PAYMENT: SandboxGatewayCapture}.get(kind)
        if books is None or not (reference or idempotency_key):
            return None  # the sandbox books no authorizations
        matches = [books.gateway_reference == reference] if reference else []
        if idempotency_key:
            matches.append(books.idempotency_key == idempotency_key)
        self._wait()
        with Session(self._engine) as session:
            row = session.scalars(select(books).where(or_(*matches)).order_by(books.id)).first()
        return None if row is None else _entry(row, books)

    def _lookup(self, books: type[SandboxGatewayBooking], key: str) -> GatewayResult | None:
        with Session(self._engine) as session:
            row = self._first_booking(session, books, key)
            return None if row is None else self._answer(row, {"idempotency_key": key}, replayed=True)

    @staticmethod
    def _first_booking(session: Session, books: type[SandboxGatewayBooking], key: str) -> SandboxGatewayBooking | None:
        statement = select(books).where(books.idempotency_key == key).order_by(books.id)
        return session.scalars(statement).first()

    @staticmethod
    def _answer(row: SandboxGatewayBooking, request: dict, *, replayed: bool) -> GatewayResult:
        outcome = GatewayOutcome.DECLINED if row.outcome == "reversed" else _SCRIPT[row.outcome][0]
        response = {
            "id": row.gateway_reference,
            "status": {"approve": "succeeded", "decline": "failed", "error": "failed", "reversed": "failed"}[row.outcome],
            "amount": str(row.amount),
            "currency": row.currency,
            "result_code": row.result_code,
            "message": row.message,
            "idempotent_replayed": replayed,
        }
        return GatewayResult(
            outcome=outcome,
            gateway_reference=row.gateway_reference,
            result_code=row.result_code,
            message=row.message,
            request=request,
            response=response,
        )


_SETTLEMENT = {"approve": Settlement.SUCCEEDED, "decline": Settlement.FAILED, "error": Settlement.FAILED,
               "reversed": Settlement.REVERSED}


def _entry(row, books: type[SandboxGatewayBooking]) -> GatewayEntry:
    """A booking (an ORM row or a plain one) as reconciliation reads it."""
    kind = RecordKind.REFUND if books is SandboxGatewayRefund else RecordKind.PAYMENT
    return GatewayEntry(
        kind=kind, reference=row.gateway_reference or f"{books.__tablename__}:{row.id}", amount=row.amount,
        currency=row.currency, settlement=_SETTLEMENT[row.outcome], created=row.created_date, status=row.outcome,
        parent_reference=row.charge_reference, idempotency_key=row.idempotency_key,
        raw={"id": row.gateway_reference, "idempotency_key": row.idempotency_key, "reference": row.charge_reference,
             "amount": str(row.amount), "currency": row.currency, "outcome": row.outcome,
             "created": row.created_date.isoformat()},
    )
