"""The Stripe adapter: refunds and captures through the stripe SDK.

What Stripe answers becomes an outcome, never an exception:

* a refund that ``succeeded`` is approved; one that is ``pending`` or ``requires_action``
  is unknown until Stripe settles it (the resolver asks again); ``failed`` or
  ``canceled`` is declined;
* Stripe refusing the request (``CardError``, ``InvalidRequestError``: no such charge,
  already refunded, amount too large) is declined: nothing moved;
* a refusal that says nothing about the request (authentication, permission, rate limit)
  is an error: nothing moved;
* no answer, a 5xx, or an idempotency conflict is unknown: Stripe may have acted.

Every refund carries its idempotency key twice: as Stripe's ``Idempotency-Key`` header
and in its metadata (``om_idempotency_key``). Stripe keeps keys for only 24 hours and
test doubles such as localstripe ignore them, so ``lookup_refund`` finds a refund by the
metadata among the charge's refunds instead of by sending it again.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import stripe

from domain.reconciliation import GatewayEntry, RecordKind, Settlement
from gateways.contract import CaptureCommand, GatewayOutcome, GatewayResult, RefundCommand

KEY_METADATA = "om_idempotency_key"

# Stripe's own table of decimals, not ISO 4217's: every currency has two unless listed
# (https://docs.stripe.com/currencies). Some take only round amounts: a three-decimal
# amount's last digit must be 0, and ISK (two decimals in the API) takes whole krónur.
_ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
                           "XAF", "XOF", "XPF"})
_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
_STEP = {**dict.fromkeys(_THREE_DECIMAL, 10), "ISK": 100}


def stripe_decimals(currency: str) -> int:
    code = currency.upper()
    return 0 if code in _ZERO_DECIMAL else 3 if code in _THREE_DECIMAL else 2


_REFUND_OUTCOMES = {
    "succeeded": GatewayOutcome.APPROVED,
    "pending": GatewayOutcome.TIMEOUT,
    "requires_action": GatewayOutcome.TIMEOUT,
    "failed": GatewayOutcome.DECLINED,
    "canceled": GatewayOutcome.DECLINED,
}


def to_stripe_amount(amount: Decimal, currency: str) -> int:
    """``amount`` in the currency's smallest unit as Stripe counts it (12.34 USD -> 1234,
    500 JPY -> 500, 1.230 KWD -> 1230); ValueError if Stripe cannot take it (too many
    decimals, or not a round enough amount for KWD, ISK and the like)."""
    scaled = amount.scaleb(stripe_decimals(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} {currency} has more decimals than Stripe takes for {currency}")
    units = int(scaled)
    if units % _STEP.get(currency.upper(), 1):
        raise ValueError(f"Stripe takes {currency} only in steps of {Decimal(_STEP[currency.upper()]).scaleb(-stripe_decimals(currency))}")
    return units


def from_stripe_amount(amount: int, currency: str) -> Decimal:
    return Decimal(amount).scaleb(-stripe_decimals(currency))


class StripeGatewayAdapter:
    """Refunds and captures on one Stripe account.

    Args:
        api_key: the account's secret or restricted key.
        api_base: the API's base URL (a test double's, in tests).
        stripe_account: a connected account to act for, if any.
        timeout_seconds: how long one call may take before its outcome counts as unknown.
    """

    def __init__(
        self, *, api_key: str, api_base: str = "https://api.stripe.com", stripe_account: str | None = None,
        timeout_seconds: float = 30.0,
    ):
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base},
            stripe_account=stripe_account,
            # Never a retry by the SDK: the engine decides, after looking the request up.
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
        )

    # --- refunds ---------------------------------------------------------------------------

    def refund(self, command: RefundCommand) -> GatewayResult:
        try:
            amount = to_stripe_amount(command.amount, command.currency)
        except ValueError as exc:
            return GatewayResult(outcome=GatewayOutcome.ERROR, result_code="invalid_amount", message=str(exc))
        params: dict[str, Any] = {
            _reference_param(command.charge_reference): command.charge_reference,
            "amount": amount,
            "metadata": {**command.metadata, KEY_METADATA: command.idempotency_key},
        }
        request = {**params, "idempotency_key": command.idempotency_key}
        try:
            refund = self._client.v1.refunds.create(params=params, options={"idempotency_key": command.idempotency_key})
        except stripe.StripeError as exc:
            return _failure(exc, request)
        return _refund_result(refund, command, request)

    def lookup_refund(self, command: RefundCommand) -> GatewayResult | None:
        params = {_reference_param(command.charge_reference): command.charge_reference, "limit": 100}
        for refund in self._client.v1.refunds.list(params=params).auto_paging_iter():
            if refund.to_dict().get("metadata", {}).get(KEY_METADATA) == command.idempotency_key:
                return _refund_result(refund, command, {"lookup": params, "idempotency_key": command.idempotency_key})
        return None

    # --- captures --------------------------------------------------------------------------

    def capture(self, command: CaptureCommand) -> GatewayResult:
        try:
            amount = to_stripe_amount(command.amount, command.currency)
        except ValueError as exc:
            return GatewayResult(outcome=GatewayOutcome.ERROR, result_code="invalid_amount", message=str(exc))
        reference = command.authorization_reference
        options = {"idempotency_key": command.idempotency_key}
        request: dict[str, Any] = {"authorization": reference, "amount": amount, "idempotency_key": command.idempotency_key}
        try:
            if reference.startswith("pi_"):
                captured = self._client.v1.payment_intents.capture(
                    reference, params={"amount_to_capture": amount}, options=options)
            else:
                captured = self._client.v1.charges.capture(reference, params={"amount": amount}, options=options)
        except stripe.StripeError as exc:
            return _failure(exc, request)
        return _capture_result(captured, command, request)

    def lookup_capture(self, command: CaptureCommand) -> GatewayResult | None:
        """The authorization's capture, if it has one. Stripe captures an authorization once
        and the engine plans one capture per Stripe authorization (``CAPTURES_ONCE``), so a
        captured one was captured by this command, or by someone outside the engine, which
        a different amount or currency shows: that is left unknown for a person to settle."""
        reference = command.authorization_reference
        if reference.startswith("pi_"):
            current = self._client.v1.payment_intents.retrieve(reference)
            captured = current.status in ("succeeded", "processing")
        else:
            current = self._client.v1.charges.retrieve(reference)
            captured = bool(current.captured)
        if not captured:
            return None
        return _capture_result(current, command, {"lookup": reference, "idempotency_key": command.idempotency_key})


    # --- what reconciliation reads (gateways.contract.ReconcilableGateway) ------------------

    lists_direct_charges = True  # every charge of the account, whoever made it

    def list_entries(self, *, since: datetime, until: datetime) -> Iterator[GatewayEntry]:
        """The account's refunds, then its charges, created in ``[since, until)``, through the
        SDK's auto-pagination (100 a page)."""
        for obj in self._created_between(self._client.v1.refunds, since, until, expand=("data.charge",)):
            if not _releases_authorization(obj):
                yield _refund_entry(obj)
        for obj in self._created_between(self._client.v1.charges, since, until):
            yield _charge_entry(obj)

    def find_entry(self, kind: RecordKind, *, reference: str | None, idempotency_key: str | None,
                   parent_reference: str | None = None) -> GatewayEntry | None:
        try:
            if kind is RecordKind.REFUND:
                if reference and reference.startswith("re_"):
                    return _refund_entry(self._client.v1.refunds.retrieve(reference))
                if not (parent_reference and idempotency_key):
                    return None
                params = {_reference_param(parent_reference): parent_reference, "limit": 100}
                for refund in self._client.v1.refunds.list(params=params).auto_paging_iter():
                    if refund.to_dict().get("metadata", {}).get(KEY_METADATA) == idempotency_key:
                        return _refund_entry(refund)
                return None
            if not reference:
                return None
            if reference.startswith("pi_"):
                return _intent_entry(self._client.v1.payment_intents.retrieve(reference))
            if reference.startswith("ch_"):
                return _charge_entry(self._client.v1.charges.retrieve(reference))
            return None
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            raise

    @staticmethod
    def _created_between(resource: Any, since: datetime, until: datetime, expand: tuple[str, ...] = ()) -> Iterator[Any]:
        """The objects created in ``[since, until)``. ``created`` counts whole seconds, so the
        window is held in whole seconds: a record made in its first second, after ``since``,
        is listed. Stripe filters by ``created[gte]`` and ``[lt]``; a listing that refuses the
        filter (a test double such as localstripe takes only ``gt`` on charges and nothing on
        refunds) is asked with less of it, and the window applied here. A 5xx is asked again
        once before it counts as a refusal, so a passing outage does not widen the listing."""
        window = {"gte": math.floor(since.timestamp()), "lt": math.ceil(until.timestamp())}
        attempts = ({"created": window}, {"created": {"gt": window["gte"] - 1}}, {})
        extra = {"limit": 100, **({"expand": list(expand)} if expand else {})}
        for number, filters in enumerate(attempts, start=1):
            try:
                page = _list_retried(resource, {**filters, **extra})
                break
            except (stripe.InvalidRequestError, stripe.APIError):
                if number == len(attempts):
                    raise
        for obj in page.auto_paging_iter():
            if window["gte"] <= int(obj.created) < window["lt"]:
                yield obj


def _list_retried(resource: Any, params: dict[str, Any]) -> Any:
    try:
        return resource.list(params=params)
    except stripe.APIError:
        return resource.list(params=params)


def _releases_authorization(refund: Any) -> bool:
    """Whether a refund is Stripe releasing what was never captured, not money paid back: a
    refund of an uncaptured charge, or one of exactly a partly captured charge's uncaptured
    part that the engine did not send (Stripe makes one when less than the authorized amount
    is captured). Only a refund listed with its charge (``expand``) can be told; the store's
    side checks again against the authorization it holds (``db.reconciliation``)."""
    data = refund.to_dict()
    charge = data.get("charge")
    if not isinstance(charge, dict):
        return False
    if not charge.get("captured"):
        return True
    captured = charge.get("amount_captured")
    if not captured or KEY_METADATA in (data.get("metadata") or {}):
        return False
    return 0 < charge["amount"] - captured == data["amount"]


def _created(obj: Any) -> datetime:
    return datetime.fromtimestamp(int(obj.created), UTC)


_REFUND_SETTLEMENT = {"succeeded": Settlement.SUCCEEDED, "pending": Settlement.PENDING,
                      "requires_action": Settlement.PENDING, "failed": Settlement.FAILED, "canceled": Settlement.FAILED}


def _refund_entry(refund: Any) -> GatewayEntry:
    data = refund.to_dict()
    if isinstance(data.get("charge"), dict):  # listed with its charge
        data["charge"] = data["charge"]["id"]
    currency = str(data.get("currency") or "").upper()
    intent = data.get("payment_intent")
    return GatewayEntry(
        kind=RecordKind.REFUND, reference=refund.id, amount=from_stripe_amount(int(data["amount"]), currency),
        currency=currency, settlement=_REFUND_SETTLEMENT.get(data.get("status") or "pending", Settlement.PENDING),
        created=_created(refund), status=data.get("status") or "pending",
        parent_reference=data.get("charge") or intent, parent_aliases=(intent,) if intent and data.get("charge") else (),
        idempotency_key=(data.get("metadata") or {}).get(KEY_METADATA), raw=data,
    )


def _charge_entry(charge: Any) -> GatewayEntry:
    data = charge.to_dict()
    currency = str(data.get("currency") or "").upper()
    status = data.get("status") or "pending"
    captured = bool(data.get("captured"))
    released = not captured and bool(data.get("refunded"))  # an authorization released uncaptured
    if status == "failed" or released:
        settlement = Settlement.FAILED
    elif status == "pending":
        settlement = Settlement.PENDING
    else:
        settlement = Settlement.SUCCEEDED
    units = data.get("amount_captured") if captured and data.get("amount_captured") else data["amount"]
    intent = data.get("payment_intent")
    return GatewayEntry(
        kind=RecordKind.PAYMENT if captured else RecordKind.AUTHORIZATION, reference=charge.id,
        amount=from_stripe_amount(int(units), currency), currency=currency, settlement=settlement,
        created=_created(charge),
        status="released" if released else status if captured or status != "succeeded" else "uncaptured",
        aliases=(intent,) if intent else (), raw=data,
    )


def _intent_entry(intent: Any) -> GatewayEntry:
    data = intent.to_dict()
    currency = str(data.get("currency") or "").upper()
    status = data.get("status") or "processing"
    captured = status == "succeeded"
    settlement = {"succeeded": Settlement.SUCCEEDED, "requires_capture": Settlement.SUCCEEDED,
                  "canceled": Settlement.FAILED}.get(status, Settlement.PENDING)
    units = data.get("amount_received") if captured and data.get("amount_received") else data["amount"]
    return GatewayEntry(
        kind=RecordKind.PAYMENT if captured else RecordKind.AUTHORIZATION, reference=intent.id,
        amount=from_stripe_amount(int(units), currency), currency=currency, settlement=settlement,
        created=_created(intent), status=status, raw=data,
    )


def _reference_param(reference: str) -> str:
    return "payment_intent" if reference.startswith("pi_") else "charge"


def _mismatch(found: Any, command: RefundCommand | CaptureCommand, amount: int | None) -> str | None:
    """Why what Stripe holds is not what the command asked for, if it is not (then a person
    settles it: the record stays unknown, its amount reserved)."""
    currency = (found.to_dict().get("currency") or command.currency).upper()
    if currency != command.currency.upper():
        return f"Stripe moved {currency}, not {command.currency.upper()}: the charge is in another currency"
    if amount is not None and amount != to_stripe_amount(command.amount, command.currency):
        return f"Stripe moved {from_stripe_amount(amount, currency)} {currency}, not {command.amount}"
    return None


def _refund_result(refund: Any, command: RefundCommand, request: dict) -> GatewayResult:
    status = refund.status or "pending"
    outcome = _REFUND_OUTCOMES.get(status, GatewayOutcome.TIMEOUT)
    if outcome is not GatewayOutcome.DECLINED and (mismatch := _mismatch(refund, command, refund.amount)):
        return GatewayResult(outcome=GatewayOutcome.TIMEOUT, gateway_reference=refund.id, result_code="mismatch",
                             message=f"{mismatch}; settle it by hand", request=request, response=refund.to_dict())
    if outcome is GatewayOutcome.APPROVED:
        code, message = "succeeded", "Refund succeeded"
    elif outcome is GatewayOutcome.TIMEOUT:
        code, message = status, f"Stripe holds the refund as {status}; it is settled when Stripe settles it"
    else:
        code = refund.to_dict().get("failure_reason") or status
        message = f"Stripe reports the refund {status}"
    return GatewayResult(outcome=outcome, gateway_reference=refund.id, result_code=code, message=message,
                         request=request, response=refund.to_dict())


def _capture_result(captured: Any, command: CaptureCommand, request: dict) -> GatewayResult:
    # amount_received / amount_captured are Stripe's; a double that lacks them (localstripe) skips the check.
    response = captured.to_dict()
    if captured.object == "payment_intent":
        done, in_flight = captured.status == "succeeded", captured.status == "processing"
        amount = response.get("amount_received")
    else:
        done, in_flight, amount = bool(captured.captured), False, response.get("amount_captured")
    if in_flight:
        return GatewayResult(outcome=GatewayOutcome.TIMEOUT, gateway_reference=captured.id, result_code="processing",
                             message="Stripe is still processing the capture", request=request, response=response)
    if not done:
        return GatewayResult(outcome=GatewayOutcome.DECLINED, gateway_reference=captured.id, result_code=captured.status,
                             message=f"Stripe left the authorization {captured.status}", request=request,
                             response=response)
    if mismatch := _mismatch(captured, command, amount):
        return GatewayResult(outcome=GatewayOutcome.TIMEOUT, gateway_reference=captured.id, result_code="mismatch",
                             message=f"{mismatch}; settle it by hand", request=request, response=response)
    return GatewayResult(outcome=GatewayOutcome.APPROVED, gateway_reference=captured.id, result_code="succeeded",
                         message="Capture succeeded", request=request, response=response)


def _failure(exc: stripe.StripeError, request: dict) -> GatewayResult:
    """What a raised Stripe error means for the money (see the module's docstring)."""
    if isinstance(exc, (stripe.CardError, stripe.InvalidRequestError)):
        outcome = GatewayOutcome.DECLINED
    elif isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError, stripe.RateLimitError)):
        outcome = GatewayOutcome.ERROR
    else:  # APIConnectionError, APIError (5xx), IdempotencyError: Stripe may have acted
        outcome = GatewayOutcome.TIMEOUT
    code = exc.code or type(exc).__name__
    return GatewayResult(
        outcome=outcome, result_code=code, message=f"{type(exc).__name__}: {exc.user_message or exc}",
        request=request, response=exc.json_body or {"http_status": exc.http_status},
    )
