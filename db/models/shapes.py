"""What every model family shares: the public (Salesforce-named) shapes and the column helpers."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, model_validator
from pydantic.alias_generators import to_pascal
from sqlmodel import Field, SQLModel

from db.ids import is_valid_id, to_18
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
        raise ValueError(f"'{value}' is not a valid 15- or 18-character record Id")
    return value and to_18(value)


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
