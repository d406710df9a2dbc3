"""A sandbox gateway whose answers are scripted, so tests and demos reach every branch.

Outcomes are chosen by amount (``outcomes_by_amount``) else ``default_outcome``:

* approve: the refund is booked and approved;
* decline: nothing is booked; result code ``card_declined``;
* error: nothing is booked; result code ``processing_error``;
* timeout: the refund **is** booked but the answer is lost, as with a real network
  timeout after the gateway acted. ``lookup_refund`` later tells the truth.

Like a real gateway it honours idempotency keys: a repeated key replays the first answer
and never books twice.
"""

from __future__ import annotations

import secrets
import time
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from db.engine import get_engine
from gateways.contract import GatewayOutcome, GatewayResult, RefundCommand
from gateways.sandbox_ledger import SandboxGatewayRefund

_SCRIPT = {
    "approve": (GatewayOutcome.APPROVED, "approved", "Refund approved"),
    "decline": (GatewayOutcome.DECLINED, "card_declined", "The refund was declined by the issuer"),
    "error": (GatewayOutcome.ERROR, "processing_error", "The gateway failed to process the refund"),
    "timeout": (GatewayOutcome.TIMEOUT, None, "No answer from the gateway before the timeout"),
}
SCRIPTED_OUTCOMES = tuple(_SCRIPT)


class SandboxGatewayAdapter:
    """The sandbox adapter.

    Args:
        store_url: database holding the sandbox's books (the store's, by default).
        default_outcome: one of approve, decline, error, timeout.
        outcomes_by_amount: amount (as a decimal string) -> outcome, overriding the default.
        latency_seconds: simulated time the gateway takes to answer.
    """

    def __init__(
        self,
        *,
        store_url: str | None = None,
        default_outcome: str = "approve",
        outcomes_by_amount: dict[str, str] | None = None,
        latency_seconds: float = 0.0,
    ):
        self._engine = get_engine(store_url)
        self._default = default_outcome
        self._by_amount = {Decimal(k): v for k, v in (outcomes_by_amount or {}).items()}
        self._latency = latency_seconds

    def _scripted(self, amount: Decimal) -> str:
        return self._by_amount.get(amount, self._default)

    def refund(self, command: RefundCommand) -> GatewayResult:
        request = {
            "idempotency_key": command.idempotency_key,
            "charge": command.charge_reference,
            "amount": str(command.amount),
            "currency": command.currency,
            "metadata": dict(command.metadata),
        }
        if self._latency:
            time.sleep(self._latency)
        outcome, code, message = _SCRIPT[self._scripted(command.amount)]
        books = outcome in (GatewayOutcome.APPROVED, GatewayOutcome.TIMEOUT)
        row = SandboxGatewayRefund(
            idempotency_key=command.idempotency_key,
            charge_reference=command.charge_reference,
            amount=command.amount,
            currency=command.currency,
            outcome=("approve" if outcome is GatewayOutcome.TIMEOUT else self._scripted(command.amount)),
            gateway_reference=f"re_sbx_{secrets.token_hex(8)}" if books else None,
            result_code=code or "approved",
            message=message,
        )
        with Session(self._engine, expire_on_commit=False) as session:
            existing = session.get(SandboxGatewayRefund, command.idempotency_key)
            if existing is None:
                session.add(row)
                try:
                    session.commit()
                except IntegrityError:  # a concurrent call with the same key won
                    session.rollback()
                    existing = session.get(SandboxGatewayRefund, command.idempotency_key)
            if existing is not None:
                return self._answer(existing, request, replayed=True)
        if outcome is GatewayOutcome.TIMEOUT:
            return GatewayResult(outcome=outcome, message=message, request=request, response={})
        return self._answer(row, request, replayed=False)

    def lookup_refund(self, idempotency_key: str) -> GatewayResult | None:
        with Session(self._engine) as session:
            row = session.get(SandboxGatewayRefund, idempotency_key)
            return None if row is None else self._answer(row, {"idempotency_key": idempotency_key}, replayed=True)

    @staticmethod
    def _answer(row: SandboxGatewayRefund, request: dict, *, replayed: bool) -> GatewayResult:
        outcome = _SCRIPT[row.outcome][0]
        response = {
            "id": row.gateway_reference,
            "status": {"approve": "succeeded", "decline": "failed", "error": "failed"}[row.outcome],
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
