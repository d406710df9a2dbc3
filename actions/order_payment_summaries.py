"""Create Order Payment Summary (Salesforce Connect ``commerce/order-management/order-payment-summaries``,
48.0; Apex ``ConnectApi.CreateOrderPaymentSummaryInputRepresentation`` and its Output).

Salesforce's integrations record the payments (or the authorization) first and then make the
order payment summary from them. Those records belong to no summary until then (sObject
create without OrderPaymentSummaryId, with CurrencyIsoCode): they roll up nowhere, and no
refund or capture reaches them (every query that sums or picks payments per summary selects
by summary id, so an unlinked record is in none of them).

``create_order_payment_summary_from`` does it in one transaction under the order summary's
lock: the named records are read locked, and anything wrong refuses the whole request with
nothing written: a record missing, already in a summary, named twice, in another currency
than the order, or payments of differing payment methods (Salesforce: "payments that share the
same payment method"; here each Payment's PaymentMethodType). Otherwise the summary is made in
the order's currency ("inherits the CurrencyIsoCode value from the OrderSummary"), the records
are linked, CapturedAmount rises by the Processed payments and AuthorizationAmount by the
Processed authorization.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema
from sqlmodel import Session, col, select

from actions.fields import ActionModel, RecordId, RequiredShortText, drop_default
from db.ids import new_id
from db.ledger import lock_order_summary
from db.models import OrderPaymentSummary, OrderSummary, Payment, PaymentAuthorization, PaymentStatus
from domain.errors import CurrencyMismatchError, InvalidInputError
from domain.money import ZERO

MAX_PAYMENTS = 200


class UnknownRecordError(InvalidInputError):
    """A record the request names does not exist (400: the request is what is wrong)."""

    error_code = "INVALID_ID_FIELD"


class CreateOrderPaymentSummaryInput(ActionModel):
    """Create Order Payment Summary Input (Connect, 48.0): the order summary, and either one
    payment authorization or the payments, sharing one payment method."""

    SINCE: ClassVar[dict[str, str]] = {"name": "66.0"}

    order_summary_id: RecordId = Field(title="Order Summary Id", description="The order the summary is for (1Os...).")
    payment_authorization_id: RecordId | SkipJsonSchema[None] = Field(
        default=None, title="Payment Authorization Id", json_schema_extra=drop_default,
        description="The authorization the summary holds (0Xc...); give this or paymentIds, not both.")
    payment_ids: list[RecordId] | SkipJsonSchema[None] = Field(
        default=None, min_length=1, max_length=MAX_PAYMENTS, title="Payment Ids", json_schema_extra=drop_default,
        description="The payments the summary holds (0a3...), of one payment method; give these or "
                    "paymentAuthorizationId, not both.")
    name: RequiredShortText | SkipJsonSchema[None] = Field(
        default=None, title="Name", json_schema_extra=drop_default,
        description="Salesforce's (66.0): the summary's name, kept as its Method (Salesforce describes Method as "
                    "the summary's name); without it, Method is the records' payment method type.")

    @model_validator(mode="after")
    def _exactly_one_source(self):
        if (self.payment_authorization_id is None) == (self.payment_ids is None):
            raise ValueError("give either paymentAuthorizationId or paymentIds (exactly one of them)")
        return self


class CreateOrderPaymentSummaryOutput(ActionModel):
    """Create Order Payment Summary Output (Apex ConnectApi, 48.0)."""

    order_payment_summary_id: str = Field(title="Order Payment Summary Id")


def _locked(session: Session, model, ids: list[str]) -> dict[str, Payment | PaymentAuthorization]:
    rows = session.exec(select(model).where(col(model.id).in_(ids)).order_by(col(model.id)).with_for_update())
    return {row.id: row for row in rows}


def create_order_payment_summary_from(*, session: Session, request: CreateOrderPaymentSummaryInput) -> OrderPaymentSummary:
    """Make the summary and link the records to it (see the module docstring); refuses with
    nothing written. The caller commits."""
    order: OrderSummary = lock_order_summary(session, request.order_summary_id)
    if request.payment_ids is not None:
        ids, model, what = request.payment_ids, Payment, "Payment"
    else:
        ids, model, what = [request.payment_authorization_id], PaymentAuthorization, "PaymentAuthorization"
    if len(set(ids)) != len(ids):
        raise InvalidInputError("paymentIds names the same payment twice")
    records = _locked(session, model, ids)
    if missing := [i for i in ids if i not in records]:
        raise UnknownRecordError(f"{what} {', '.join(missing)} does not exist")
    chosen = [records[i] for i in ids]
    if linked := [r.id for r in chosen if r.order_payment_summary_id is not None]:
        raise InvalidInputError(f"{what} {', '.join(linked)} already belongs to an order payment summary")
    if foreign := [r.id for r in chosen if r.currency_iso_code != order.currency_iso_code]:
        raise CurrencyMismatchError(f"{what} {', '.join(foreign)} is not in the order's currency ({order.currency_iso_code})")
    methods = sorted({str(r.payment_method_type) for r in chosen})
    if len(methods) > 1:
        raise InvalidInputError(f"the payments do not share one payment method ({', '.join(methods)}): an order payment "
                                "summary holds payments of one payment method")
    processed = sum((r.amount for r in chosen if r.status == PaymentStatus.PROCESSED), ZERO)
    summary = OrderPaymentSummary(
        id=new_id("OrderPaymentSummary"), order_summary_id=order.id, currency_iso_code=order.currency_iso_code,
        method=request.name or methods[0],
        captured_amount=processed if model is Payment else Decimal(0),
        authorization_amount=processed if model is PaymentAuthorization else Decimal(0),
    )
    session.add(summary)
    session.flush()  # the summary exists before the records point at it
    for record in chosen:
        record.order_payment_summary_id = summary.id
        session.add(record)
    session.flush()
    return summary
