"""Billing documents of an order (CreditMemo, Invoice, their lines) and credit applied to invoices.

Both documents have the same shape: a TotalAmount set once and a Balance that payments,
refunds and credit applications bring down to zero.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import Field as PydanticField
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from db.models.shapes import PublicShape, RecordId, SalesforceShape, _created_column, _money_column
from db.types import MoneyAmount


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
