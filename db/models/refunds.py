"""Refunds and what records them: gateway call logs, process exceptions, and the refund events
outbox with its webhook deliveries."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import computed_field, field_validator
from sqlalchemy import Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.ids import KEY_PREFIXES
from db.models.payments import ProcessingMode
from db.models.shapes import PublicShape, RecordId, SalesforceShape, _created_column
from db.types import MoneyAmount, UTCDateTime


class RefundStatus(StrEnum):
    """Refund.Status. PENDING holds its amount in PendingRefundAmount until the gateway
    answers; PROCESSED moves it to RefundedAmount; FAILED releases it; UNKNOWN (the
    gateway timed out) keeps it reserved until the gateway is asked what happened."""

    PENDING = "Pending"
    PROCESSED = "Processed"
    FAILED = "Failed"
    UNKNOWN = "Unknown"
    REVERSED = "Reversed"  # processed, then reported failed by the gateway: the amounts are unwound


# A refund's status as the refunds API, webhooks and exports show it (seed 003's names).
REFUND_API_STATUS: dict[str, str] = {
    RefundStatus.PENDING: "PENDING", RefundStatus.UNKNOWN: "PENDING", RefundStatus.PROCESSED: "SUCCEEDED",
    RefundStatus.FAILED: "FAILED", RefundStatus.REVERSED: "REVERSED",
}


class InteractionType(StrEnum):
    REFUND = "Refund"
    CAPTURE = "Capture"


class InteractionStatus(StrEnum):
    INITIATED = "Initiated"
    SUCCESS = "Success"
    FAILED = "Failed"
    TIMEOUT = "Timeout"
    NOOP = "NoOp"


# --- Refund -----------------------------------------------------------------------------


class RefundPublic(PublicShape):
    id: str
    order_payment_summary_id: str
    payment_id: str
    credit_memo_id: str | None
    amount: Decimal
    currency_iso_code: str
    status: RefundStatus
    type: str
    funding_source: str
    idempotency_key: str
    gateway_ref_number: str | None
    gateway_result_code: str | None
    gateway_message: str | None
    background_operation_id: str | None
    reason: str | None
    note: str | None
    direct_debit_override_reason: str | None
    revision: int
    created_date: datetime
    last_modified_date: datetime
    # Salesforce's names (Field Reference v67 `salesforce-field-reference-refund`; Object
    # Reference `sforce_api_objects_refund`), kept on the row since migration 0017.
    processing_mode: ProcessingMode = Field(
        title="Processing Mode", description="The refunded payment's ProcessingMode: External when its money moved "
                                             "outside the engine (no gateway was called), else Salesforce.")
    payment_gateway_id: str | None = Field(
        title="Payment Gateway ID", description="The refunded payment's gateway; None for an External payment that "
                                                "names none.")
    sf_result_code: str | None = Field(
        title="Salesforce Result Code",
        description="The Salesforce result code of the gateway's answer (Success, Decline, SystemError, Indeterminate); "
                    "None until the gateway answers. A later reversal leaves it and sets Status Reversed.")
    gateway_result_code_description: str | None = Field(
        default=None, title="Gateway Result Code Description",
        description="Salesforce's field (255): the engine keeps no description apart from GatewayMessage, so it reads "
                    "null (as PaymentGatewayLog's does).")


class Refund(SQLModel, table=True):
    """A refund against one payment. Written PENDING, with its idempotency key, before the
    gateway is called; the key is what the gateway sees, so a retry cannot refund twice."""

    __tablename__ = "refund"
    __table_args__ = (UniqueConstraint("idempotency_key", name="uq_refund_idempotency_key"),)
    id: str = Field(primary_key=True, max_length=18)
    order_payment_summary_id: str = Field(foreign_key="order_payment_summary.id", index=True, max_length=18)
    payment_id: str = Field(foreign_key="payment.id", index=True, max_length=18)
    credit_memo_id: str | None = Field(default=None, foreign_key="credit_memo.id", index=True, max_length=18)
    amount: Decimal = Field(sa_type=MoneyAmount)
    currency_iso_code: str = Field(max_length=3)
    status: RefundStatus = Field(default=RefundStatus.PENDING, index=True, sa_type=String(40))
    type: str = Field(default="Referenced", max_length=40)
    funding_source: str = Field(default="CreditMemo", max_length=40)
    idempotency_key: str = Field(max_length=255)
    gateway_ref_number: str | None = Field(default=None, max_length=255)
    gateway_result_code: str | None = Field(default=None, max_length=255)
    gateway_message: str | None = Field(default=None, max_length=1000)
    reason: str | None = Field(default=None, max_length=255, description="Why (payment-level refunds).")
    note: str | None = Field(default=None, max_length=1000, description="A free-text note for the record.")
    direct_debit_override_reason: str | None = Field(
        default=None, max_length=255, description="Why a direct debit was refunded despite the risk (seed 002).")
    revision: int = Field(default=1, description="Grows by one on every change; webhook subscribers order events by it.")
    allocation_step: str | None = Field(
        default=None, max_length=40,
        description="Ensure Refunds: the step(s) of seed 000 that chose this refund (Sequence, CreditMemo, ExcessFunds).",
    )
    background_operation_id: str | None = Field(default=None, max_length=36, index=True)
    processing_mode: ProcessingMode = Field(
        default=ProcessingMode.SALESFORCE, sa_type=String(40),
        description="The refunded payment's ProcessingMode, copied when the refund is made (migration 0017).")
    payment_gateway_id: str | None = Field(
        default=None, max_length=18,
        description="The refunded payment's gateway, copied when the refund is made; None for an External payment "
                    "naming none (migration 0017).")
    sf_result_code: str | None = Field(
        default=None, max_length=40,
        description="Salesforce's SfResultCode of the gateway's answer, as on the refund's gateway log (migration 0017).")
    created_date: datetime = _created_column()
    last_modified_date: datetime = _created_column()
    resolve_attempted_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime,
        description="When resolve-gateway-outcomes last asked the gateway about it (the least recently asked go first).",
    )


Index("ix_refund_created", Refund.created_date, Refund.id)  # keyset paging of Query Refunds, reconcile-gateway
Index("ix_refund_gateway_ref_number", Refund.gateway_ref_number)  # reconcile-gateway: matched by the gateway's id


# --- RefundLinePayment: the sObject view of a refund that moved money -----------------
#
# Salesforce links a refund to the payment it refunds through RefundLinePayment (Object
# Reference v67 `sforce_api_objects_refundlinepayment`: RefundId, PaymentId, Amount, Type,
# HasBeenUnapplied...). Each refund here refunds exactly one payment, so each Processed refund
# is one line, read from the refund's own row: nothing else is stored and the refund paths do
# not change. Its Id is the refund's with the line's key prefix, so the checksum stays
# Salesforce's (both prefixes have no upper-case letter) and the refund is found from it.

_REFUND_PREFIX, _LINE_PREFIX = KEY_PREFIXES["Refund"], KEY_PREFIXES["RefundLinePayment"]
assert not any(c.isupper() for c in _REFUND_PREFIX + _LINE_PREFIX), "the checksum must not depend on the prefixes"


def refund_line_payment_id(refund_id: str) -> str:
    """The Id of the line of refund ``refund_id``."""
    return _LINE_PREFIX + refund_id[3:]


def refund_of_line_payment(record_id: str) -> str | None:
    """The refund whose line ``record_id`` is, or None if it is no line's Id. (A refund made
    before Ids carried key prefixes has a line too, read by SOQL; its Id does not lead back.)"""
    return _REFUND_PREFIX + record_id[3:] if record_id.startswith(_LINE_PREFIX) and len(record_id) == 18 else None


class RefundLinePaymentPublic(PublicShape):
    """A Processed refund as Salesforce's RefundLinePayment. Type and HasBeenUnapplied are
    restricted picklists whose only documented values are Applied and No (Object Reference
    v67): a refund still Pending, Failed or Unknown moved no money and has no line; a Reversed
    one is no longer applied (Salesforce documents no Unapplied line), so it has none either.
    The lines of a payment therefore sum to its TotalRefundApplied."""

    refund_id: str = Field(validation_alias="id", title="Refund ID", description="The refund this line is of.")
    payment_id: str = Field(title="Payment ID", description="The payment the refund returned money from.")
    amount: Decimal = Field(title="Amount", description="The whole refund: each refund here refunds one payment.")
    currency_iso_code: str
    applied_date: datetime = Field(
        validation_alias="last_modified_date", title="Applied Date",
        description="When the gateway's answer made the refund Processed (a Processed refund is not changed after).")
    date: datetime = Field(validation_alias="last_modified_date", title="Date", description="As AppliedDate.")
    effective_date: datetime = Field(validation_alias="last_modified_date", title="Effective Date",
                                     description="As AppliedDate.")
    created_date: datetime = Field(validation_alias="last_modified_date", title="Created Date",
                                   description="As AppliedDate: the line exists from when the refund was applied.")
    associated_refund_line_payment_id: str | None = Field(
        default=None, title="Refund Line Payment ID",
        description="Salesforce fills it on Unapplied lines only; every line here is Applied, so it reads null.")

    @computed_field(alias="Id")
    @property
    def id(self) -> str:
        return refund_line_payment_id(self.refund_id)

    @computed_field(alias="Type")
    @property
    def type(self) -> Literal["Applied"]:
        return "Applied"

    @computed_field(alias="HasBeenUnapplied")
    @property
    def has_been_unapplied(self) -> Literal["No"]:
        return "No"

    @computed_field(alias="ImpactAmount")
    @property
    def impact_amount(self) -> Decimal:
        """Positive for an Applied line (Object Reference v67): the amount."""
        return self.amount

    @computed_field(alias="EffectiveImpactAmount")
    @property
    def effective_impact_amount(self) -> Decimal:
        """The amount: no Unapplied line is paired with it."""
        return self.amount


# --- PaymentGatewayLog / ProcessException -----------------------------------------------


class PaymentGatewayLogPublic(PublicShape):
    id: str
    payment_gateway_id: str | None = Field(
        title="Payment Gateway Id", description="None for a call about an External payment (no gateway was called).")
    referenced_entity_id: str = Field(
        validation_alias="reference_entity_id", title="Referenced Entity Id",
        description="The payment, authorization or refund the call was for (Salesforce's name, Field Reference v67).")
    reference_entity_id: str = Field(title="Reference Entity Id", description="This engine's extra: the same as ReferencedEntityId.")
    interaction_type: InteractionType
    interaction_status: InteractionStatus
    gateway_result_code: str | None
    gateway_result_code_description: str | None = Field(
        default=None, title="Gateway Result Code Description",
        description="Salesforce's field (Field Reference v67, 255): the engine keeps no description apart from "
                    "GatewayMessage, so it reads null.")
    gateway_message: str | None = Field(
        title="Gateway Message", description="Salesforce's 255 characters (Field Reference v67): a longer message "
                                             "is kept whole in the log and cut to 255 here.")
    sf_result_code: str | None
    sf_ref_number: str
    gateway_ref_number: str | None
    request: str | None
    response: str | None
    background_operation_id: str | None
    created_date: datetime

    @field_validator("gateway_message")
    @classmethod
    def _salesforce_length(cls, value: str | None) -> str | None:
        return value[:255] if value is not None else None

    @computed_field(alias="GatewayDate")
    @property
    def gateway_date(self) -> datetime:
        """Salesforce's GatewayDate (the gateway communication that made this log): when the
        engine wrote the log, just before it called the gateway."""
        return self.created_date


class PaymentGatewayLog(SQLModel, table=True):
    """One row per gateway call: written Initiated with the idempotency key it sends
    (SfRefNumber) before the call, completed with the outcome after."""

    __tablename__ = "payment_gateway_log"
    id: str = Field(primary_key=True, max_length=18)
    payment_gateway_id: str | None = Field(
        default=None, foreign_key="payment_gateway.id", max_length=18,
        description="None for an External payment's refund or capture (gateways.external: no gateway is called).")
    reference_entity_id: str = Field(index=True, max_length=18)
    interaction_type: InteractionType = Field(sa_type=String(40))
    interaction_status: InteractionStatus = Field(default=InteractionStatus.INITIATED, sa_type=String(40))
    gateway_result_code: str | None = Field(default=None, max_length=255)
    gateway_message: str | None = Field(default=None, max_length=1000)
    sf_result_code: str | None = Field(default=None, max_length=40)
    sf_ref_number: str = Field(index=True, max_length=255)
    gateway_ref_number: str | None = Field(default=None, max_length=255)
    request: str | None = Field(default=None, sa_column=Column(Text))
    response: str | None = Field(default=None, sa_column=Column(Text))
    background_operation_id: str | None = Field(default=None, max_length=36)
    created_date: datetime = _created_column()


# ProcessException's picklists as Salesforce documents them (Object Reference v67
# `sforce_api_objects_processexception`; Salesforce Help `om_process_exception_fields`).
PROCESS_EXCEPTION_CATEGORIES = ("Fulfillment", "Invoicing", "Order Activation", "Order Approval", "Order To Asset",
                                "Payment")


class ProcessExceptionPublic(PublicShape):
    id: str
    attached_to_id: str
    order_summary_id: str | None
    case_id: str | None = Field(
        default=None, title="Case ID", description="The case associated with the process exception (Salesforce's CaseId).")
    category: str
    severity: str
    priority: str | None = Field(
        default=None, title="Priority",
        description="Salesforce's resolution priority (Help: High or Low). The engine sets none, and create and "
                    "update do not take it: the Object Reference pages read did not show its Create/Update properties.")
    status: str
    message: str
    description: str | None
    background_operation_id: str | None
    created_date: datetime


class ProcessExceptionCreate(SalesforceShape):
    """What sObject create accepts for a ProcessException: the fields Salesforce's Object
    Reference (v67) marks Create. AttachedToId and Message are not nillable there, so required;
    Category is defaulted on create (Salesforce's default is Order Activation)."""

    attached_to_id: RecordId
    message: str = Field(min_length=1, max_length=255)
    order_summary_id: RecordId | None = None
    case_id: RecordId | None = None
    category: str = Field(default="Order Activation", min_length=1, max_length=40,
                          description="Salesforce's (customizable) picklist: " + ", ".join(PROCESS_EXCEPTION_CATEGORIES))
    description: str | None = Field(default=None, max_length=2000)


class ProcessException(SQLModel, table=True):
    """A failed money step that needs a person (a declined refund, an unknown outcome)."""

    __tablename__ = "process_exception"
    id: str = Field(primary_key=True, max_length=18)
    attached_to_id: str = Field(index=True, max_length=18)
    order_summary_id: str | None = Field(default=None, index=True, max_length=18)
    case_id: str | None = Field(default=None, max_length=18, description="Salesforce's CaseId (migration 0016).")
    category: str = Field(default="Payment", max_length=40)
    severity: str = Field(default="High", max_length=40)
    status: str = Field(default="New", max_length=40)
    message: str = Field(max_length=255)
    description: str | None = Field(default=None, sa_column=Column(Text))
    background_operation_id: str | None = Field(default=None, index=True, max_length=36)
    created_date: datetime = _created_column()


# --- the refund events outbox and its webhook deliveries --------------------------------


class RefundEvent(SQLModel, table=True):
    """Refund Created/Updated, written in the same transaction as the change it reports, so
    an event exists exactly when its change does. ``entity`` is the refund as of the change."""

    __tablename__ = "refund_event"
    __table_args__ = (UniqueConstraint("event_id", name="uq_refund_event_event_id"),)
    position: int | None = Field(default=None, primary_key=True, description="Insertion order (for readers).")
    event_id: str = Field(max_length=36, description="Unique per event: subscribers drop repeats by it.")
    event_type: str = Field(max_length=40, description="RefundCreated or RefundUpdated.")
    refund_id: str = Field(max_length=18, index=True)
    sequence: int = Field(description="The refund's revision after the change: subscribers drop older ones by it.")
    entity: str = Field(sa_column=Column(Text, nullable=False), description="The refund as JSON.")
    created_date: datetime = _created_column()


Index("ix_refund_event_created_date", RefundEvent.created_date)  # webhook enqueue: events since a time


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription: delivered, waiting for its next attempt, or given up."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (UniqueConstraint("subscription", "event_id", name="uq_webhook_delivery_subscription_event"),)
    id: int | None = Field(default=None, primary_key=True)
    subscription: str = Field(max_length=255, index=True, description="The WebhookSubscription block's name.")
    event_id: str = Field(max_length=36, foreign_key="refund_event.event_id")
    status: str = Field(default="Pending", max_length=20, index=True, description="Pending, Delivered or Failed.")
    attempts: int = Field(default=0)
    next_attempt_at: datetime = _created_column()
    last_error: str | None = Field(default=None, max_length=1000)
    delivered_date: datetime | None = Field(default=None, sa_type=UTCDateTime)
