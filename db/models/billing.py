"""Billing documents of an order (CreditMemo, Invoice, their lines) and credit applied to invoices.

Both documents have the same shape: a total set once and a Balance that payments, refunds
and credit applications bring down to zero. The column ``total_amount`` is the total with
tax (what the ledger allocates); ``total_tax_amount`` is the tax in it (the sum of the
lines' tax). Salesforce's names (Field Reference v67, CreditMemo and Invoice): TotalAmount
is pretax, TotalTaxAmount the tax, TotalAmountWithTax their sum; the order summary is the
ReferenceEntityId (OrderSummaryId stays readable as this engine's extra).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from typing import Any

from pydantic import Field as PydanticField, ValidationInfo, computed_field, field_validator, model_validator
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from db.models.shapes import PublicShape, RecordId, SalesforceShape, _created_column, _money_column
from db.types import MoneyAmount
from domain.money import ZERO


class BillingDocumentBase(SQLModel):
    order_summary_id: str = Field(foreign_key="order_summary.id", index=True, max_length=18)
    total_amount: Decimal = Field(sa_type=MoneyAmount, description="The total with tax: what the ledger allocates.")
    description: str | None = Field(default=None, max_length=255)


class BillingDocumentCreate(SalesforceShape):
    """Salesforce creates these documents only through its actions; this engine also lets
    sObject create make one (an extension). ReferenceEntityId is the order summary;
    OrderSummaryId is its deprecated alias (one of them; both only if they agree).
    TotalAmount is pretax, TotalTaxAmount the tax on it: the document totals their sum."""

    reference_entity_id: RecordId = PydanticField(title="Reference Entity Id", description="The order summary (1Os...).")
    order_summary_id: RecordId | None = PydanticField(
        default=None, title="Order Summary Id", description="Deprecated alias of ReferenceEntityId.")
    total_amount: Decimal = PydanticField(gt=0, title="Total Amount", description="Pretax total.")
    total_tax_amount: Decimal = PydanticField(default=ZERO, ge=0, title="Total Tax Amount")
    description: str | None = PydanticField(default=None, max_length=255)

    @model_validator(mode="before")
    @classmethod
    def _order_summary_id_is_an_alias(cls, data: Any) -> Any:
        """OrderSummaryId alone stands for ReferenceEntityId."""
        if isinstance(data, dict) and not {"ReferenceEntityId", "reference_entity_id"} & data.keys():
            for alias in ("OrderSummaryId", "order_summary_id"):
                if data.get(alias) is not None:
                    return {**data, "ReferenceEntityId": data[alias]}
        return data

    @field_validator("order_summary_id")
    @classmethod
    def _agrees_with_reference_entity_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        reference = info.data.get("reference_entity_id")
        if value is not None and reference is not None and value != reference:
            raise ValueError(f"OrderSummaryId ({value}) and ReferenceEntityId ({reference}) name different order "
                             "summaries: give ReferenceEntityId only (OrderSummaryId is its deprecated alias)")
        return value


class BillingDocumentPublic(PublicShape):
    """Salesforce's names; TotalAmount (pretax) is computed, so it is listed last."""

    id: str
    reference_entity_id: str = Field(validation_alias="order_summary_id", title="Reference Entity Id",
                                     description="The order summary this document belongs to.")
    order_summary_id: str = Field(title="Order Summary Id", description="This engine's extra: the same as ReferenceEntityId.")
    description: str | None
    currency_iso_code: str
    total_tax_amount: Decimal
    total_amount_with_tax: Decimal = Field(validation_alias="total_amount", title="Total Amount With Tax")
    balance: Decimal
    status: str
    created_date: datetime

    @computed_field(alias="TotalAmount", title="Total Amount", description="Pretax: TotalAmountWithTax - TotalTaxAmount.")
    @property
    def total_amount(self) -> Decimal:
        return self.total_amount_with_tax - self.total_tax_amount


class BillingDocumentLedger(SQLModel):
    id: str = Field(primary_key=True, max_length=18)
    currency_iso_code: str = Field(max_length=3)
    total_tax_amount: Decimal = _money_column(description="The tax in total_amount: the sum of the lines' tax.")
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


class BillingLinePublic(PublicShape):
    """A line as Salesforce names it (Field Reference v67, CreditMemoLine and InvoiceLine):
    ChargeAmount pretax, ChargeTaxAmount its tax, ChargeAmountWithTax and LineAmount the sum.
    TaxAmount is the same tax under this engine's column name. Read-only: lines come from
    the actions that make their document."""

    id: str
    name: str
    type: str
    charge_amount: Decimal
    charge_tax_amount: Decimal = Field(validation_alias="tax_amount", title="Charge Tax Amount")
    tax_amount: Decimal = Field(title="Tax Amount", description="This engine's extra: the same as ChargeTaxAmount.")
    created_date: datetime

    @computed_field(alias="ChargeAmountWithTax", title="Charge Amount With Tax")
    @property
    def charge_amount_with_tax(self) -> Decimal:
        return self.charge_amount + self.charge_tax_amount

    @computed_field(alias="LineAmount", title="Line Amount", description="The line's total with tax.")
    @property
    def line_amount(self) -> Decimal:
        return self.charge_amount + self.charge_tax_amount


class CreditMemoLinePublic(BillingLinePublic):
    credit_memo_id: str


class InvoiceLinePublic(BillingLinePublic):
    invoice_id: str


class CreditMemoCreate(BillingDocumentCreate):
    """What sObject create accepts for a CreditMemo (its Balance starts at TotalAmountWithTax)."""


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
    """What sObject create accepts for an Invoice (its Balance starts at TotalAmountWithTax)."""


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
