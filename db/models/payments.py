"""The payment side of an order: gateways, payment summaries, authorizations, captured payments
and what they pay (PaymentLineInvoice)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field as PydanticField, computed_field
from sqlalchemy import Index, String
from sqlmodel import Field, SQLModel

from db.models.shapes import CurrencyCode, PublicShape, RecordId, SalesforceShape, _created_column, _money_column
from db.types import MoneyAmount, UTCDateTime, utcnow
from domain.gateway_provider import GatewayProvider
from domain.money import ZERO, quantize


class PaymentStatus(StrEnum):
    DRAFT = "Draft"
    PROCESSED = "Processed"
    CANCELED = "Canceled"


class ProcessingMode(StrEnum):
    """Payment.ProcessingMode / PaymentAuthorization.ProcessingMode (Object Reference v67, a
    restricted picklist): Salesforce's records move money through their PaymentGateway;
    External ones were taken outside, so refunding or capturing them calls no gateway
    (``gateways.external.ExternalAdapter`` records them, and the money moves outside)."""

    EXTERNAL = "External"
    SALESFORCE = "Salesforce"


class PaymentMethodType(StrEnum):
    CARD = "Card"
    DIRECT_DEBIT = "DirectDebit"
    DIGITAL_WALLET = "DigitalWallet"


class PaymentApplicationType(StrEnum):
    """PaymentLineInvoice.Type. PENDING holds an invoice amount for a capture the gateway
    has not confirmed; APPLIED counts in the payment's AppliedAmount; UNAPPLIED is a
    pending application whose capture failed (kept for the record, counting nowhere)."""

    APPLIED = "Applied"
    PENDING = "Pending"
    UNAPPLIED = "Unapplied"


# --- PaymentGateway ---------------------------------------------------------------------


class PaymentGatewayBase(SQLModel):
    payment_gateway_name: str = Field(max_length=255)
    gateway_provider: GatewayProvider = Field(default=GatewayProvider.SANDBOX, sa_type=String(40))
    merchant_credential_name: str | None = Field(
        default=None, max_length=255,
        description="Name of the Prefect block document holding this gateway's configuration.",
    )
    status: str = Field(default="Active", max_length=40)
    one_refund_at_a_time: bool = Field(
        default=False, description="The gateway takes one refund per payment at a time (refunds wait for the last answer).")
    refund_unsupported_methods: str | None = Field(
        default=None, max_length=255,
        description="Comma-separated payment methods the gateway cannot refund, e.g. 'DigitalWallet'.")

    def refunds_method(self, method: str) -> bool:
        unsupported = {m.strip() for m in (self.refund_unsupported_methods or "").split(",") if m.strip()}
        return method not in unsupported


class PaymentGatewayCreate(SalesforceShape, PaymentGatewayBase):
    """What sObject create accepts for a PaymentGateway. Salesforce's own reference fields
    (Object Reference v67: MerchantCredentialId, a Named Credential; PaymentGatewayProviderId;
    ExternalReference, Create) are accepted and kept nowhere: this engine configures a gateway
    by GatewayProvider and MerchantCredentialName (a Prefect block) instead."""

    IGNORED: ClassVar[set[str]] = {"merchant_credential_id", "payment_gateway_provider_id", "external_reference"}

    merchant_credential_id: RecordId | None = PydanticField(default=None, description="Accepted and ignored.")
    payment_gateway_provider_id: RecordId | None = PydanticField(default=None, description="Accepted and ignored.")
    external_reference: str | None = PydanticField(default=None, max_length=255, description="Accepted and ignored.")


class PaymentGatewayPublic(PublicShape, PaymentGatewayBase):
    id: str
    created_date: datetime


class PaymentGateway(PaymentGatewayBase, table=True):
    __tablename__ = "payment_gateway"
    id: str = Field(primary_key=True, max_length=18)
    created_date: datetime = _created_column()


# --- OrderPaymentSummary ----------------------------------------------------------------


class OrderPaymentSummaryBase(SQLModel):
    order_summary_id: str = Field(foreign_key="order_summary.id", index=True, max_length=18)
    method: str = Field(
        default=PaymentMethodType.CARD.value, max_length=255, min_length=1,
        description="Salesforce's Method: free text naming the summary's payment method, e.g. 'Visa' (Object "
                    "Reference v67: string; Field Reference v67: 255 characters). The engine reads nothing from it: "
                    "its refund rules (direct debit, methods a gateway cannot refund) read each Payment's own "
                    "PaymentMethodType.")
    type: str = Field(default="Sale", max_length=40)


class OrderPaymentSummaryCreate(SalesforceShape, OrderPaymentSummaryBase):
    order_summary_id: RecordId


class LedgerAmounts(SQLModel):
    currency_iso_code: str = Field(max_length=3)
    authorization_amount: Decimal = _money_column()
    captured_amount: Decimal = _money_column()
    refunded_amount: Decimal = _money_column()
    pending_capture_amount: Decimal = _money_column()
    pending_refund_amount: Decimal = _money_column()


def available_to_refund(ops: LedgerAmounts) -> Decimal:
    """DESIGN.md §3: max(0, Captured + PendingCapture - Refunded - PendingRefund)."""
    return max(ZERO, ops.captured_amount + ops.pending_capture_amount - ops.refunded_amount - ops.pending_refund_amount)


class OrderPaymentSummaryPublic(PublicShape, OrderPaymentSummaryBase, LedgerAmounts):
    id: str
    created_date: datetime

    @computed_field(alias="AvailableToRefundAmount")
    @property
    def available_to_refund_amount(self) -> Decimal:
        return quantize(available_to_refund(self), self.currency_iso_code, strict=False)

    @computed_field(alias="AvailableToCaptureAmount")
    @property
    def available_to_capture_amount(self) -> Decimal:
        amount = max(ZERO, self.authorization_amount - self.captured_amount - self.pending_capture_amount)
        return quantize(amount, self.currency_iso_code, strict=False)

    @computed_field(alias="BalanceAmount")
    @property
    def balance_amount(self) -> Decimal:
        return quantize(self.captured_amount - self.refunded_amount, self.currency_iso_code, strict=False)

    # Salesforce's other fields (Object Reference v67, OrderPaymentSummary) for what this
    # engine does not keep: no authorization reversals, reserved balances, payment methods.
    authorization_reversal_amount: Decimal = Field(default=ZERO, title="Authorization Reversal Amount")
    pending_authorization_amount: Decimal = Field(default=ZERO, title="Pending Authorization Amount")
    pending_reverse_auth_amount: Decimal = Field(default=ZERO, title="Pending Reverse Auth Amount")
    reserved_balance_total_amount: Decimal = Field(default=ZERO, title="Reserved Balance Total Amount")
    last_payment_gateway_log_id: str | None = Field(default=None, title="Last Payment Gateway Log Id")
    payment_method_id: str | None = Field(default=None, title="Payment Method Id")
    full_name: str | None = Field(default=None, title="Full Name")


class OrderPaymentSummary(OrderPaymentSummaryBase, LedgerAmounts, table=True):
    __tablename__ = "order_payment_summary"
    id: str = Field(primary_key=True, max_length=18)
    created_date: datetime = _created_column()

    @property
    def available_to_refund_amount(self) -> Decimal:
        return available_to_refund(self)


# --- Payment ----------------------------------------------------------------------------


UNLINKED = ("None until an order payment summary takes it (Create Order Payment Summary): until then it rolls "
            "up nowhere, and no refund or capture can reach it.")


class PaymentBase(SQLModel):
    order_payment_summary_id: str | None = Field(
        default=None, foreign_key="order_payment_summary.id", index=True, max_length=18, description=UNLINKED)
    payment_gateway_id: str | None = Field(
        default=None, foreign_key="payment_gateway.id", max_length=18,
        description="The gateway that moves its money; required in Salesforce mode, optional when External.")
    processing_mode: ProcessingMode = Field(default=ProcessingMode.SALESFORCE, sa_type=String(40))
    amount: Decimal = Field(sa_type=MoneyAmount)
    status: PaymentStatus = Field(default=PaymentStatus.PROCESSED, sa_type=String(40))
    type: str = Field(default="Capture", max_length=40)
    payment_method_type: PaymentMethodType = Field(default=PaymentMethodType.CARD, sa_type=String(40))
    gateway_ref_number: str | None = Field(
        default=None, max_length=255, description="The charge's id at the gateway (Stripe: ch_... or pi_...)."
    )


class PaymentCreate(SalesforceShape, PaymentBase):
    order_payment_summary_id: RecordId | None = None
    currency_iso_code: CurrencyCode | None = PydanticField(
        default=None, description="Required without OrderPaymentSummaryId; with it, the summary's currency.")
    payment_gateway_id: RecordId | None = None
    amount: Decimal = PydanticField(gt=0)


class PaymentPublic(PublicShape, PaymentBase):
    id: str
    currency_iso_code: str
    refunded_amount: Decimal
    pending_refund_amount: Decimal
    applied_amount: Decimal
    payment_authorization_id: str | None
    created_date: datetime
    # Salesforce's names (Object Reference v67, Payment) read from the columns above: what
    # was applied to invoices, and what was refunded (processed refunds). Nothing is ever
    # unapplied here, so the Net figures equal the Total ones.
    total_applied: Decimal = Field(validation_alias="applied_amount", title="Total Applied")
    net_applied: Decimal = Field(validation_alias="applied_amount", title="Net Applied")
    total_refund_applied: Decimal = Field(validation_alias="refunded_amount", title="Total Refund Applied")
    net_refund_applied: Decimal = Field(validation_alias="refunded_amount", title="Net Refund Applied")


class Payment(PaymentBase, table=True):
    __tablename__ = "payment"
    id: str = Field(primary_key=True, max_length=18)
    currency_iso_code: str = Field(max_length=3)
    refunded_amount: Decimal = _money_column()
    pending_refund_amount: Decimal = _money_column()
    applied_amount: Decimal = _money_column(description="Amount applied to invoices (PaymentLineInvoice rows).")
    payment_authorization_id: str | None = Field(
        default=None, foreign_key="payment_authorization.id", index=True, max_length=18,
        description="The authorization this payment captured, if it is a capture.",
    )
    created_date: datetime = _created_column()
    resolve_attempted_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime,
        description="When resolve-gateway-outcomes last asked the gateway about it (the least recently asked go first).",
    )

    @property
    def refundable_amount(self) -> Decimal:
        if self.status != PaymentStatus.PROCESSED:
            return ZERO
        return max(ZERO, self.amount - self.refunded_amount - self.pending_refund_amount)


Index("ix_payment_status_created", Payment.status, Payment.created_date)  # resolve-captures: Draft captures, oldest first
Index("ix_payment_gateway_ref_number", Payment.gateway_ref_number)  # reconcile-gateway: matched by the gateway's id
Index("ix_payment_created", Payment.created_date, Payment.id)  # reconcile-gateway: the store's side, in keyset pages


# --- PaymentAuthorization / PaymentLineInvoice -----------------------------------------


class PaymentAuthorizationBase(SQLModel):
    order_payment_summary_id: str | None = Field(
        default=None, foreign_key="order_payment_summary.id", index=True, max_length=18, description=UNLINKED)
    payment_gateway_id: str | None = Field(
        default=None, foreign_key="payment_gateway.id", max_length=18,
        description="The gateway that holds the funds; required in Salesforce mode, optional when External.")
    processing_mode: ProcessingMode = Field(default=ProcessingMode.SALESFORCE, sa_type=String(40))
    amount: Decimal = Field(sa_type=MoneyAmount)
    status: PaymentStatus = Field(default=PaymentStatus.PROCESSED, sa_type=String(40))
    payment_method_type: PaymentMethodType = Field(default=PaymentMethodType.CARD, sa_type=String(40))
    gateway_ref_number: str | None = Field(
        default=None, max_length=255, description="The authorization's id at the gateway."
    )
    expiration_date: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PaymentAuthorizationCreate(SalesforceShape, PaymentAuthorizationBase):
    order_payment_summary_id: RecordId | None = None
    currency_iso_code: CurrencyCode | None = PydanticField(
        default=None, description="Required without OrderPaymentSummaryId; with it, the summary's currency.")
    payment_gateway_id: RecordId | None = None
    amount: Decimal = PydanticField(gt=0)
    expiration_date: AwareDatetime | None = None


class PaymentAuthorizationPublic(PublicShape, PaymentAuthorizationBase):
    id: str
    currency_iso_code: str
    captured_amount: Decimal
    pending_capture_amount: Decimal
    created_date: datetime

    @computed_field(alias="AvailableToCaptureAmount")
    @property
    def available_to_capture_amount(self) -> Decimal:
        amount = max(ZERO, self.amount - self.captured_amount - self.pending_capture_amount)
        return quantize(amount, self.currency_iso_code, strict=False)

    # Salesforce's names (Field Reference v67, PaymentAuthorization): this engine reverses no
    # authorization, so TotalAuthReversalAmount is 0 and Balance = Amount - captured.
    total_payment_capture_amount: Decimal = Field(validation_alias="captured_amount", title="Total Payment Capture Amount")
    total_auth_reversal_amount: Decimal = Field(default=ZERO, title="Total Auth Reversal Amount")

    @computed_field(alias="Balance", title="Balance",
                    description="Amount - TotalPaymentCaptureAmount - TotalAuthReversalAmount.")
    @property
    def balance(self) -> Decimal:
        return self.amount - self.total_payment_capture_amount - self.total_auth_reversal_amount


class PaymentAuthorization(PaymentAuthorizationBase, table=True):
    """Funds held on the customer's payment method; captures turn them into Payments."""

    __tablename__ = "payment_authorization"
    id: str = Field(primary_key=True, max_length=18)
    currency_iso_code: str = Field(max_length=3)
    captured_amount: Decimal = _money_column()
    pending_capture_amount: Decimal = _money_column()
    created_date: datetime = _created_column()

    @property
    def capturable_amount(self) -> Decimal:
        if self.status != PaymentStatus.PROCESSED:
            return ZERO
        if self.expiration_date is not None and self.expiration_date <= utcnow():
            return ZERO  # an expired authorization holds nothing any more
        return max(ZERO, self.amount - self.captured_amount - self.pending_capture_amount)


Index("ix_payment_authorization_gateway_ref_number", PaymentAuthorization.gateway_ref_number)  # reconcile-gateway


class PaymentLineInvoicePublic(PublicShape):
    """Applied and Unapplied rows only: a Pending one is not a Salesforce record (the sObject
    view hides it, db.sobjects)."""

    id: str
    payment_id: str
    invoice_id: str
    amount: Decimal
    currency_iso_code: str
    type: Literal["Applied", "Unapplied"] = Field(
        description="Salesforce's restricted picklist (Object Reference v67: Applied, Unapplied).")
    background_operation_id: str | None
    applied_date: datetime


class PaymentLineInvoice(SQLModel, table=True):
    """A payment's captured amount applied to an invoice (Ensure Funds)."""

    __tablename__ = "payment_line_invoice"
    id: str = Field(primary_key=True, max_length=18)
    payment_id: str = Field(foreign_key="payment.id", index=True, max_length=18)
    invoice_id: str = Field(foreign_key="invoice.id", index=True, max_length=18)
    amount: Decimal = Field(sa_type=MoneyAmount)
    currency_iso_code: str = Field(max_length=3)
    type: PaymentApplicationType = Field(default=PaymentApplicationType.APPLIED, sa_type=String(40))
    background_operation_id: str | None = Field(default=None, max_length=36, index=True)
    applied_date: datetime = _created_column()
