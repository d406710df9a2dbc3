"""Reconciliation against the gateways: each difference found, and which store records a run matched.

ReconciliationFinding is this engine's own object (Salesforce Order Management has none:
its reconciliation is a report a person builds). One row per difference, kept across runs
by its fingerprint: a rerun that finds it again moves LastSeen; one that no longer finds
it resolves it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.models.shapes import PublicShape, _created_column
from db.types import MoneyAmount, UTCDateTime


class FindingStatus(StrEnum):
    """Open until a person or a later run settles it."""

    OPEN = "Open"
    RESOLVED = "Resolved"


class FindingResolution(StrEnum):
    """Why a finding was resolved."""

    RECORDED = "RecordedExternalRefund"  # the run recorded the gateway's refund in the store
    NOT_FOUND_AGAIN = "NoLongerFound"  # a later run over the same records found no difference


class ReconciliationFindingFields(SQLModel):
    difference: str = Field(max_length=40, description="AmountDiffers, CurrencyDiffers, StatusDiffers, MissingInStore, "
                                                       "MissingAtGateway or PendingTooLong.")
    record_kind: str = Field(max_length=40, description="Refund, Payment (a capture or captured charge) or Authorization.")
    status: FindingStatus = Field(default=FindingStatus.OPEN, sa_type=String(20), index=True,
                                  description="Open, or Resolved (see Resolution).")
    resolution: FindingResolution | None = Field(default=None, sa_type=String(40))
    gateway_account: str = Field(max_length=255, index=True,
                                 description="The gateway account reconciled: its provider and block (several "
                                             "PaymentGateway records may share one).")
    payment_gateway_id: str | None = Field(default=None, max_length=18, index=True)
    gateway_reference: str | None = Field(default=None, max_length=255, index=True,
                                          description="The record's id at the gateway (re_..., ch_...).")
    gateway_status: str | None = Field(default=None, max_length=40)
    gateway_amount: Decimal | None = Field(default=None, sa_type=MoneyAmount)
    gateway_currency: str | None = Field(default=None, max_length=3)
    store_object: str | None = Field(default=None, max_length=40, description="Refund, Payment or PaymentAuthorization.")
    store_record_id: str | None = Field(default=None, max_length=18, index=True)
    store_status: str | None = Field(default=None, max_length=40)
    store_amount: Decimal | None = Field(default=None, sa_type=MoneyAmount)
    store_currency: str | None = Field(default=None, max_length=3)
    order_summary_id: str | None = Field(default=None, max_length=18, index=True)
    payment_id: str | None = Field(default=None, max_length=18, description="The payment the record takes or refunds.")
    recorded_refund_id: str | None = Field(default=None, max_length=18,
                                           description="The external refund the run recorded for it, if any.")
    detail: str = Field(max_length=1000)
    occurred_date: datetime = Field(sa_type=UTCDateTime,
                                    description="When the record was made (at the gateway, else in the store): the "
                                                "window a rerun covers is matched on it.")
    first_seen_date: datetime = _created_column()
    last_seen_date: datetime = _created_column()
    resolved_date: datetime | None = Field(default=None, sa_type=UTCDateTime)
    first_seen_run_id: str = Field(max_length=36, description="The reconcile-gateway run that found it first.")
    last_seen_run_id: str = Field(max_length=36, index=True)
    resolved_run_id: str | None = Field(default=None, max_length=36)
    times_opened: int = Field(default=1, description="1, plus one each time a resolved difference came back.")


class ReconciliationFindingPublic(PublicShape, ReconciliationFindingFields):
    id: str

    @property
    def currency_iso_code(self) -> str | None:  # amounts are quantized to the gateway's or the store's currency
        return self.gateway_currency or self.store_currency


class ReconciliationFinding(ReconciliationFindingFields, table=True):
    __tablename__ = "reconciliation_finding"
    __table_args__ = (UniqueConstraint("fingerprint", name="uq_reconciliation_finding_fingerprint"),)
    id: str = Field(primary_key=True, max_length=18)
    fingerprint: str = Field(max_length=400, description="The difference and the record it is about: one row per pair.")


Index("ix_reconciliation_finding_window", ReconciliationFinding.gateway_account, ReconciliationFinding.status,
      ReconciliationFinding.occurred_date)


class ReconciliationMatch(SQLModel, table=True):
    """The store records one run matched to gateway records (deleted when the run ends), so
    the store's side is read as an anti-join, in pages, whatever the number of records, and
    a second gateway record of the same store record is seen wherever it is listed."""

    __tablename__ = "reconciliation_match"
    run_id: str = Field(primary_key=True, max_length=36)
    record_id: str = Field(primary_key=True, max_length=18)
    gateway_reference: str = Field(max_length=255, description="The gateway record matched to it (a second one is a duplicate).")
    noted_date: datetime = _created_column()
