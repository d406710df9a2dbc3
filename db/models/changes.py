"""Changes to an order: change orders (cancel, return, fee) and returns (ReturnOrder and its lines)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import Field as PydanticField, computed_field
from sqlalchemy import String, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.models.shapes import PublicShape, _created_column, _money_column, _quantity_column
from db.types import UTCDateTime


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

    @computed_field(alias="LifeCycleType")
    @property
    def life_cycle_type(self) -> str:
        """Salesforce's Managed or Unmanaged (Return Order Input's returnOrderLifeCycleType, 51.0):
        only Managed return orders are made here."""
        return "Managed"


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
