"""OrderSummary and its lines (OrderItemSummary) with their quantities."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import Field as PydanticField, computed_field
from sqlmodel import Field, SQLModel

from db.models.shapes import (
    CurrencyCode, PublicShape, RecordId, SalesforceShape, _created_column, _money_column, _quantity_column,
)
from db.types import MoneyAmount, Quantity
from domain.money import ZERO, quantize


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

    @computed_field(alias="OrderLifeCycleType")
    @property
    def order_life_cycle_type(self) -> str:
        """Salesforce's MANAGED or UNMANAGED (Connect Order Summary Input, 49.0): every order
        here is managed by the engine's actions."""
        return "MANAGED"


class OrderSummary(OrderSummaryBase, table=True):
    __tablename__ = "order_summary"
    id: str = Field(primary_key=True, max_length=18)
    created_date: datetime = _created_column()


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
