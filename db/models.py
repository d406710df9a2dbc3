"""SQLModel tables of the money objects, with Salesforce's names as their public shape.

One family per object, as in fastapi's full-stack template: ``XBase`` (fields a caller
may set), ``XCreate`` (what sObject create accepts), ``XPublic`` (what is returned,
derived amounts included) and ``X`` (the table). Columns are snake_case; the public
models speak Salesforce's PascalCase field names (``CapturedAmount``, ``OrderSummaryId``).

Ledger amounts (CapturedAmount, RefundedAmount, Pending*Amount, Balance) are read-only
to callers: they move only through payments, refunds and credit applications.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field as PydanticField, computed_field, model_validator
from pydantic.alias_generators import to_pascal
from sqlalchemy import Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.ids import is_valid_id
from db.types import MoneyAmount, Quantity, UTCDateTime, utcnow
from domain.money import ZERO, normalize_currency, quantize


def _money_column(**kwargs: Any) -> Any:
    return Field(default=ZERO, sa_type=MoneyAmount, **kwargs)


def _quantity_column(**kwargs: Any) -> Any:
    return Field(default=ZERO, sa_type=Quantity, **kwargs)


def _created_column() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _check_id(value: str | None) -> str | None:
    if value is not None and not is_valid_id(value):
        raise ValueError(f"'{value}' is not a valid 18-character record Id")
    return value


RecordId = Annotated[str, AfterValidator(_check_id)]
CurrencyCode = Annotated[str, AfterValidator(normalize_currency)]


class SalesforceShape(SQLModel):
    """Public (API) models: Salesforce field names, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="forbid")


class PublicShape(SalesforceShape):
    """Read models: amounts quantized to the record's currency on the way out."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="ignore", from_attributes=True)

    @model_validator(mode="after")
    def _quantize_money(self):
        currency = getattr(self, "currency_iso_code", None)
        if currency:
            for name, value in self:
                if isinstance(value, Decimal) and not name.startswith("quantity"):  # counts are not money
                    object.__setattr__(self, name, quantize(value, currency, strict=False))
        return self


# --- statuses -------------------------------------------------------------------------


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


class PaymentStatus(StrEnum):
    DRAFT = "Draft"
    PROCESSED = "Processed"
    CANCELED = "Canceled"


class PaymentMethodType(StrEnum):
    CARD = "Card"
    DIRECT_DEBIT = "DirectDebit"
    DIGITAL_WALLET = "DigitalWallet"


class GatewayProvider(StrEnum):
    SANDBOX = "Sandbox"
    STRIPE = "Stripe"


class PaymentApplicationType(StrEnum):
    """PaymentLineInvoice.Type. PENDING holds an invoice amount for a capture the gateway
    has not confirmed; APPLIED counts in the payment's AppliedAmount; UNAPPLIED is a
    pending application whose capture failed (kept for the record, counting nowhere)."""

    APPLIED = "Applied"
    PENDING = "Pending"
    UNAPPLIED = "Unapplied"


class InteractionType(StrEnum):
    REFUND = "Refund"
    CAPTURE = "Capture"


class InteractionStatus(StrEnum):
    INITIATED = "Initiated"
    SUCCESS = "Success"
    FAILED = "Failed"
    TIMEOUT = "Timeout"
    NOOP = "NoOp"


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
    """What sObject create accepts for a PaymentGateway."""


class PaymentGatewayPublic(PublicShape, PaymentGatewayBase):
    id: str
    created_date: datetime


class PaymentGateway(PaymentGatewayBase, table=True):
    __tablename__ = "payment_gateway"
    id: str = Field(primary_key=True, max_length=18)
    created_date: datetime = _created_column()


# --- OrderSummary -----------------------------------------------------------------------


class OrderSummaryBase(SQLModel):
    order_number: str = Field(max_length=255)
    account_id: str | None = Field(default=None, max_length=18)
    currency_iso_code: str = Field(default="USD", max_length=3)
    status: str = Field(default="Created", max_length=40)


class OrderSummaryCreate(SalesforceShape, OrderSummaryBase):
    currency_iso_code: CurrencyCode = "USD"


class OrderSummaryPublic(PublicShape, OrderSummaryBase):
    id: str
    created_date: datetime


class OrderSummary(OrderSummaryBase, table=True):
    __tablename__ = "order_summary"
    id: str = Field(primary_key=True, max_length=18)
    created_date: datetime = _created_column()


# --- OrderPaymentSummary ----------------------------------------------------------------


class OrderPaymentSummaryBase(SQLModel):
    order_summary_id: str = Field(foreign_key="order_summary.id", index=True, max_length=18)
    method: PaymentMethodType = Field(default=PaymentMethodType.CARD, sa_type=String(40))
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


class OrderPaymentSummary(OrderPaymentSummaryBase, LedgerAmounts, table=True):
    __tablename__ = "order_payment_summary"
    id: str = Field(primary_key=True, max_length=18)
    created_date: datetime = _created_column()

    @property
    def available_to_refund_amount(self) -> Decimal:
        return available_to_refund(self)


# --- OrderItemSummary / ChangeOrder -----------------------------------------------------


class OrderItemSummaryBase(SQLModel):
    order_summary_id: str = Field(foreign_key="order_summary.id", index=True, max_length=18)
    name: str = Field(max_length=255)
    product_code: str | None = Field(default=None, max_length=255)
    type: str = Field(default="Order Product", max_length=40, description="Order Product or Delivery Charge.")
    unit_price: Decimal = Field(sa_type=MoneyAmount)
    quantity_ordered: Decimal = Field(sa_type=Quantity)
    total_tax_amount: Decimal = _money_column()


class OrderItemSummaryCreate(SalesforceShape, OrderItemSummaryBase):
    order_summary_id: RecordId
    unit_price: Decimal = PydanticField(ge=0)
    quantity_ordered: Decimal = PydanticField(gt=0, decimal_places=4, max_digits=19)
    total_tax_amount: Decimal = PydanticField(default=ZERO, ge=0)


class ItemQuantities(SQLModel):
    quantity_canceled: Decimal = _quantity_column()
    quantity_fulfilled: Decimal = _quantity_column()
    quantity_return_initiated: Decimal = _quantity_column()
    quantity_returned: Decimal = _quantity_column()

    @property
    def available_to_cancel(self) -> Decimal:
        return self.quantity_ordered - self.quantity_canceled - self.quantity_fulfilled

    @property
    def available_to_return(self) -> Decimal:
        return self.quantity_fulfilled - self.quantity_return_initiated


class OrderItemSummaryPublic(PublicShape, OrderItemSummaryBase, ItemQuantities):
    id: str
    currency_iso_code: str
    created_date: datetime

    @computed_field(alias="TotalLineAmount")
    @property
    def total_line_amount(self) -> Decimal:
        return quantize(self.unit_price * self.quantity_ordered, self.currency_iso_code, strict=False)

    @computed_field(alias="QuantityAvailableToCancel")
    @property
    def quantity_available_to_cancel(self) -> Decimal:
        return self.available_to_cancel

    @computed_field(alias="QuantityAvailableToFulfill")
    @property
    def quantity_available_to_fulfill(self) -> Decimal:
        return self.available_to_cancel

    @computed_field(alias="QuantityAvailableToReturn")
    @property
    def quantity_available_to_return(self) -> Decimal:
        return self.available_to_return


class OrderItemSummary(OrderItemSummaryBase, ItemQuantities, table=True):
    """A line of an order, with its quantities; they move only through the actions."""

    __tablename__ = "order_item_summary"
    id: str = Field(primary_key=True, max_length=18)
    currency_iso_code: str = Field(max_length=3)
    created_date: datetime = _created_column()


class ChangeOrderType(StrEnum):
    CANCEL = "Cancel"
    RETURN = "Return"
    FEE = "Fee"


class ChangeOrderPublic(PublicShape):
    id: str
    order_summary_id: str
    type: ChangeOrderType
    reason: str | None
    currency_iso_code: str
    total_amount: Decimal
    total_tax_amount: Decimal
    credit_memo_id: str | None
    invoice_id: str | None
    created_date: datetime


class ChangeOrder(SQLModel, table=True):
    """A change to an order (cancel, return, fee). As in Salesforce, a Cancel or Return
    change order has positive amounts (what it credits) and a Fee change order negative
    ones (what it charges). Used once, by one credit memo (Cancel, Return) or invoice (Fee)."""

    __tablename__ = "change_order"
    id: str = Field(primary_key=True, max_length=18)
    order_summary_id: str = Field(foreign_key="order_summary.id", index=True, max_length=18)
    type: ChangeOrderType = Field(sa_type=String(40))
    reason: str | None = Field(default=None, max_length=255)
    currency_iso_code: str = Field(max_length=3)
    total_amount: Decimal = _money_column(description="Net amount of the items, tax excluded.")
    total_tax_amount: Decimal = _money_column()
    credit_memo_id: str | None = Field(default=None, foreign_key="credit_memo.id", index=True, max_length=18)
    invoice_id: str | None = Field(default=None, foreign_key="invoice.id", index=True, max_length=18)
    background_operation_id: str | None = Field(
        default=None, max_length=36, description="The flow run that made it: a re-run returns it instead."
    )
    created_date: datetime = _created_column()

    # One change order of each type per operation (return-to-refund makes a Return and a Fee one).
    __table_args__ = (UniqueConstraint("background_operation_id", "type", name="uq_change_order_operation_type"),)


class ChangeOrderItemPublic(PublicShape):
    id: str
    change_order_id: str
    order_item_summary_id: str | None
    name: str
    quantity: Decimal
    amount: Decimal
    tax_amount: Decimal
    currency_iso_code: str


class ChangeOrderItem(SQLModel, table=True):
    __tablename__ = "change_order_item"
    id: str = Field(primary_key=True, max_length=18)
    change_order_id: str = Field(foreign_key="change_order.id", index=True, max_length=18)
    order_item_summary_id: str | None = Field(default=None, foreign_key="order_item_summary.id", index=True, max_length=18)
    name: str = Field(max_length=255)
    quantity: Decimal = _quantity_column()
    amount: Decimal = _money_column()
    tax_amount: Decimal = _money_column()
    currency_iso_code: str = Field(max_length=3)


# --- returns --------------------------------------------------------------------------


class ReturnOrderStatus(StrEnum):
    SUBMITTED = "Submitted"
    CLOSED = "Closed"  # every line processed


class ReturnOrderLineType(StrEnum):
    ORDER_PRODUCT = "Order Product"
    FEE = "Fee"


class ReturnOrderPublic(PublicShape):
    id: str
    order_summary_id: str
    status: ReturnOrderStatus
    description: str | None
    currency_iso_code: str
    created_date: datetime


class ReturnOrder(SQLModel, table=True):
    """Items a customer sends back, expected then received (Salesforce's ReturnOrder)."""

    __tablename__ = "return_order"
    __table_args__ = (UniqueConstraint("background_operation_id", name="uq_return_order_background_operation_id"),)
    id: str = Field(primary_key=True, max_length=18)
    order_summary_id: str = Field(foreign_key="order_summary.id", index=True, max_length=18)
    status: ReturnOrderStatus = Field(default=ReturnOrderStatus.SUBMITTED, sa_type=String(40))
    description: str | None = Field(default=None, max_length=255)
    currency_iso_code: str = Field(max_length=3)
    created_date: datetime = _created_column()
    background_operation_id: str | None = Field(
        default=None, max_length=36, description="The flow run that made it: a re-run returns it instead."
    )


class ReturnOrderLineItemPublic(PublicShape):
    id: str
    return_order_id: str
    order_item_summary_id: str | None
    type: ReturnOrderLineType
    name: str
    quantity_expected: Decimal
    quantity_received: Decimal
    quantity_returned: Decimal
    quantity_rejected: Decimal
    quantity_canceled: Decimal
    reason_for_return: str | None
    reason_for_rejection: str | None
    fee_amount: Decimal
    fee_tax_amount: Decimal
    currency_iso_code: str
    change_order_id: str | None
    split_from_id: str | None
    processed_date: datetime | None = PydanticField(description="When it was processed; a processed line is read-only.")
    created_date: datetime


class ReturnOrderLineItem(SQLModel, table=True):
    """A product line (units of an order item expected back) or a fee line (a return fee
    charged when the return is processed). Processing makes it read-only: ``change_order_id``
    (or ``processed_date``) is set, and units still expected move to a new split line."""

    __tablename__ = "return_order_line_item"
    id: str = Field(primary_key=True, max_length=18)
    return_order_id: str = Field(foreign_key="return_order.id", index=True, max_length=18)
    order_item_summary_id: str | None = Field(default=None, foreign_key="order_item_summary.id", index=True, max_length=18)
    type: ReturnOrderLineType = Field(default=ReturnOrderLineType.ORDER_PRODUCT, sa_type=String(40))
    name: str = Field(max_length=255)
    quantity_expected: Decimal = _quantity_column()
    quantity_received: Decimal = _quantity_column()
    quantity_returned: Decimal = _quantity_column()
    quantity_rejected: Decimal = _quantity_column()
    quantity_canceled: Decimal = _quantity_column()
    reason_for_return: str | None = Field(default=None, max_length=255)
    reason_for_rejection: str | None = Field(default=None, max_length=255)
    fee_amount: Decimal = _money_column(description="A fee line's charge, tax excluded.")
    fee_tax_amount: Decimal = _money_column()
    currency_iso_code: str = Field(max_length=3)
    change_order_id: str | None = Field(default=None, foreign_key="change_order.id", index=True, max_length=18)
    split_from_id: str | None = Field(default=None, foreign_key="return_order_line_item.id", max_length=18, index=True,
                                      description="The processed line whose units still expected this line carries.")
    processed_date: datetime | None = Field(default=None, sa_type=UTCDateTime)
    background_operation_id: str | None = Field(default=None, max_length=36, index=True,
                                                description="The flow run that processed it.")
    created_date: datetime = _created_column()



# --- Payment ----------------------------------------------------------------------------


class PaymentBase(SQLModel):
    order_payment_summary_id: str = Field(foreign_key="order_payment_summary.id", index=True, max_length=18)
    payment_gateway_id: str = Field(foreign_key="payment_gateway.id", max_length=18)
    amount: Decimal = Field(sa_type=MoneyAmount)
    status: PaymentStatus = Field(default=PaymentStatus.PROCESSED, sa_type=String(40))
    type: str = Field(default="Capture", max_length=40)
    payment_method_type: PaymentMethodType = Field(default=PaymentMethodType.CARD, sa_type=String(40))
    gateway_ref_number: str | None = Field(
        default=None, max_length=255, description="The charge's id at the gateway (Stripe: ch_... or pi_...)."
    )


class PaymentCreate(SalesforceShape, PaymentBase):
    order_payment_summary_id: RecordId
    payment_gateway_id: RecordId
    amount: Decimal = PydanticField(gt=0)


class PaymentPublic(PublicShape, PaymentBase):
    id: str
    currency_iso_code: str
    refunded_amount: Decimal
    pending_refund_amount: Decimal
    applied_amount: Decimal
    payment_authorization_id: str | None
    created_date: datetime


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


# --- PaymentAuthorization / PaymentLineInvoice -----------------------------------------


class PaymentAuthorizationBase(SQLModel):
    order_payment_summary_id: str = Field(foreign_key="order_payment_summary.id", index=True, max_length=18)
    payment_gateway_id: str = Field(foreign_key="payment_gateway.id", max_length=18)
    amount: Decimal = Field(sa_type=MoneyAmount)
    status: PaymentStatus = Field(default=PaymentStatus.PROCESSED, sa_type=String(40))
    payment_method_type: PaymentMethodType = Field(default=PaymentMethodType.CARD, sa_type=String(40))
    gateway_ref_number: str | None = Field(
        default=None, max_length=255, description="The authorization's id at the gateway."
    )
    expiration_date: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PaymentAuthorizationCreate(SalesforceShape, PaymentAuthorizationBase):
    order_payment_summary_id: RecordId
    payment_gateway_id: RecordId
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


class PaymentLineInvoicePublic(PublicShape):
    id: str
    payment_id: str
    invoice_id: str
    amount: Decimal
    currency_iso_code: str
    type: str
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


# --- CreditMemo / Invoice ---------------------------------------------------------------
# Both are billing documents of one order with the same shape: a TotalAmount set once and
# a Balance that payments, refunds and credit applications bring down to zero.


class BillingDocumentBase(SQLModel):
    order_summary_id: str = Field(foreign_key="order_summary.id", index=True, max_length=18)
    total_amount: Decimal = Field(sa_type=MoneyAmount)
    description: str | None = Field(default=None, max_length=255)


class BillingDocumentCreate(SalesforceShape, BillingDocumentBase):
    order_summary_id: RecordId
    total_amount: Decimal = PydanticField(gt=0)


class BillingDocumentPublic(PublicShape, BillingDocumentBase):
    id: str
    currency_iso_code: str
    balance: Decimal
    status: str
    created_date: datetime


class BillingDocumentLedger(SQLModel):
    id: str = Field(primary_key=True, max_length=18)
    currency_iso_code: str = Field(max_length=3)
    balance: Decimal = _money_column()
    status: str = Field(default="Posted", max_length=40)
    created_date: datetime = _created_column()


class BillingLineFields(SQLModel):
    id: str = Field(primary_key=True, max_length=18)
    name: str = Field(max_length=255)
    type: str = Field(default="Charge", max_length=40)
    charge_amount: Decimal = _money_column()
    tax_amount: Decimal = _money_column()
    created_date: datetime = _created_column()


class CreditMemoCreate(BillingDocumentCreate):
    """What sObject create accepts for a CreditMemo (its Balance starts at TotalAmount)."""


class CreditMemoPublic(BillingDocumentPublic):
    """A CreditMemo as the API returns it."""


class CreditMemo(BillingDocumentBase, BillingDocumentLedger, table=True):
    __tablename__ = "credit_memo"
    background_operation_id: str | None = Field(
        default=None, max_length=36, unique=True, description="The flow run that made it: a re-run returns it instead."
    )


class CreditMemoLine(BillingLineFields, table=True):
    __tablename__ = "credit_memo_line"
    credit_memo_id: str = Field(foreign_key="credit_memo.id", index=True, max_length=18)


class InvoiceCreate(BillingDocumentCreate):
    """What sObject create accepts for an Invoice (its Balance starts at TotalAmount)."""


class InvoicePublic(BillingDocumentPublic):
    """An Invoice as the API returns it."""


class Invoice(BillingDocumentBase, BillingDocumentLedger, table=True):
    __tablename__ = "invoice"
    __table_args__ = (UniqueConstraint("background_operation_id", name="uq_invoice_background_operation_id"),)
    background_operation_id: str | None = Field(
        default=None, max_length=36, description="The flow run that made it: a re-run returns it instead."
    )


class InvoiceLine(BillingLineFields, table=True):
    __tablename__ = "invoice_line"
    invoice_id: str = Field(foreign_key="invoice.id", index=True, max_length=18)


class CreditMemoInvApplicationPublic(PublicShape):
    id: str
    credit_memo_id: str
    invoice_id: str
    amount: Decimal
    currency_iso_code: str
    background_operation_id: str | None
    applied_date: datetime


class CreditMemoInvApplication(SQLModel, table=True):
    """A credit memo amount applied to an invoice (invoicesToPay)."""

    __tablename__ = "credit_memo_inv_application"
    id: str = Field(primary_key=True, max_length=18)
    credit_memo_id: str = Field(foreign_key="credit_memo.id", index=True, max_length=18)
    invoice_id: str = Field(foreign_key="invoice.id", index=True, max_length=18)
    amount: Decimal = Field(sa_type=MoneyAmount)
    currency_iso_code: str = Field(max_length=3)
    background_operation_id: str | None = Field(default=None, max_length=36, index=True)
    applied_date: datetime = _created_column()


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
    created_date: datetime = _created_column()
    last_modified_date: datetime = _created_column()
    resolve_attempted_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime,
        description="When resolve-gateway-outcomes last asked the gateway about it (the least recently asked go first).",
    )


# --- PaymentGatewayLog / ProcessException -----------------------------------------------


class PaymentGatewayLogPublic(PublicShape):
    id: str
    payment_gateway_id: str
    reference_entity_id: str
    interaction_type: InteractionType
    interaction_status: InteractionStatus
    gateway_result_code: str | None
    gateway_message: str | None
    sf_result_code: str | None
    sf_ref_number: str
    gateway_ref_number: str | None
    request: str | None
    response: str | None
    background_operation_id: str | None
    created_date: datetime


class PaymentGatewayLog(SQLModel, table=True):
    """One row per gateway call: written Initiated with the idempotency key it sends
    (SfRefNumber) before the call, completed with the outcome after."""

    __tablename__ = "payment_gateway_log"
    id: str = Field(primary_key=True, max_length=18)
    payment_gateway_id: str = Field(foreign_key="payment_gateway.id", max_length=18)
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


class ProcessExceptionPublic(PublicShape):
    id: str
    attached_to_id: str
    order_summary_id: str | None
    category: str
    severity: str
    status: str
    message: str
    description: str | None
    background_operation_id: str | None
    created_date: datetime


class ProcessException(SQLModel, table=True):
    """A failed money step that needs a person (a declined refund, an unknown outcome)."""

    __tablename__ = "process_exception"
    id: str = Field(primary_key=True, max_length=18)
    attached_to_id: str = Field(index=True, max_length=18)
    order_summary_id: str | None = Field(default=None, index=True, max_length=18)
    category: str = Field(default="Payment", max_length=40)
    severity: str = Field(default="High", max_length=40)
    status: str = Field(default="New", max_length=40)
    message: str = Field(max_length=255)
    description: str | None = Field(default=None, sa_column=Column(Text))
    background_operation_id: str | None = Field(default=None, index=True, max_length=36)
    created_date: datetime = _created_column()


Index("ix_refund_created", Refund.created_date, Refund.id)  # keyset paging of Query Refunds
Index("ix_payment_status_created", Payment.status, Payment.created_date)  # resolve-captures: Draft captures, oldest first


# --- the REST facade's idempotency keys for synchronous actions -------------------------


class IdempotentRequest(SQLModel, table=True):
    """A synchronous action's answer under an Idempotency-Key, written in the action's own
    transaction: a retry replays it, a different request under the key is refused."""

    __tablename__ = "idempotent_request"
    key: str = Field(primary_key=True, max_length=400, description="The caller's scope and the key it sent.")
    fingerprint: str = Field(max_length=64, description="SHA-256 of the method, path and canonical body.")
    status_code: int
    response_body: str = Field(sa_column=Column(Text, nullable=False))
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


class ExecutorHeartbeat(SQLModel, table=True):
    """A warm executor's liveness: written every second with the flow runs it holds, so any
    executor can tell a dead one's runs (held by nobody alive) and mark them Crashed."""

    __tablename__ = "executor_heartbeat"
    executor_id: str = Field(primary_key=True, max_length=100, description="host:pid:random, unique per process.")
    work_pool: str = Field(max_length=255, description="The Prefect work pool it executes.")
    started_at: datetime = _created_column()
    beat_at: datetime = _created_column()
    run_ids: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"),
                         description="JSON list of the flow run ids it holds.")


class ExecutorClaim(SQLModel, table=True):
    """Who took a flow run out of one particular Scheduled state. The first insert wins, so
    an executor acting on a stale read (the run was since claimed, run and finished) can
    never claim it again: Prefect itself accepts PENDING after a final state when results
    are not persisted."""

    __tablename__ = "executor_claim"
    flow_run_id: str = Field(primary_key=True, max_length=36)
    scheduled_state_id: str = Field(primary_key=True, max_length=36)
    executor_id: str = Field(max_length=100)
    claimed_at: datetime = _created_column()


class OperationStep(SQLModel, table=True):
    """One step of a composition run (issue 13). A step runs its action under an operation
    id of its own, derived from the run's and the step's (compositions.run), so two steps
    of one run never share records; this row leads back from that id to the run carrying
    it, for the resolvers (is the operation still running?) and for a person reading what
    an operation changed."""

    __tablename__ = "operation_step"
    id: str = Field(primary_key=True, max_length=36, description="The step's operation id (a uuid5).")
    operation_id: str = Field(max_length=36, index=True, description="The composition run's flow run id.")
    composition: str = Field(max_length=63)
    step: str = Field(max_length=80, description="The step id, with [n] for a Loop's n-th element.")
    action: str = Field(max_length=63)
    output: str | None = Field(default=None, sa_column=Column(Text, nullable=True),
                               description="The action's output (JSON) once it returned: a resumed run reads it back.")
    created_date: datetime = _created_column()


class CompositionRun(SQLModel, table=True):
    """The composition a run started with (issue 13): a resumed run runs that one, not one
    an operator has edited since, so its steps' operation ids mean what they meant."""

    __tablename__ = "composition_run"
    operation_id: str = Field(primary_key=True, max_length=36, description="The run's flow run id.")
    composition: str = Field(max_length=63)
    definition: str = Field(sa_column=Column(Text, nullable=False), description="The composition as JSON.")
    created_date: datetime = _created_column()
