"""Migration 0015: Payment and PaymentAuthorization get ProcessingMode (Salesforce for the rows
already there), and may name no gateway (External records); down again only while every row
names one. OrderPaymentSummary.Method becomes free text of up to 255 characters."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from db.engine import get_engine, session_scope
from db.migrate import downgrade, upgrade
from db.sobjects import read_sobject
from tests.conftest import drop_postgres_database, fresh_postgres_database

WHEN = "2026-01-01T00:00:00+00:00"
ORDER, OPS, GATEWAY = "1OsAAAAAAAAAAAAAAA", "0aaAAAAAAAAAAAAAAA", "0b0AAAAAAAAAAAAAAA"
PAYMENT, AUTHORIZATION, LOG = "0a3AAAAAAAAAAAAAAA", "0XcAAAAAAAAAAAAAAA", "0XtAAAAAAAAAAAAAAA"
EXTERNAL = "0a3BBBBBBBBBBBBBBB"
LONG_METHOD = "Visa ending 4242, expires 12/30, issued by Example Bank"  # free text, over 0014's 40


def _insert(connection, table: str, values: dict) -> None:
    columns = ", ".join(values)
    connection.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in values)})"), values)


MONEY = {"currency_iso_code": "USD", "created_date": WHEN}


def _store_at_0014(connection) -> None:
    _insert(connection, "order_summary", {"id": ORDER, "order_number": "X", "currency_iso_code": "USD",
                                          "status": "Created", "created_date": WHEN})
    _insert(connection, "payment_gateway", {"id": GATEWAY, "payment_gateway_name": "g", "gateway_provider": "Sandbox",
                                            "status": "Active", "one_refund_at_a_time": False, "created_date": WHEN})
    _insert(connection, "order_payment_summary", {
        "id": OPS, "order_summary_id": ORDER, "method": "Card", "type": "Sale", "authorization_amount": "20.00",
        "captured_amount": "10.00", "refunded_amount": "0", "pending_capture_amount": "0", "pending_refund_amount": "0",
        **MONEY})
    _insert(connection, "payment_authorization", {
        "id": AUTHORIZATION, "order_payment_summary_id": OPS, "payment_gateway_id": GATEWAY, "amount": "20.00",
        "status": "Processed", "payment_method_type": "Card", "captured_amount": "0", "pending_capture_amount": "0",
        **MONEY})
    _insert(connection, "payment", {
        "id": PAYMENT, "order_payment_summary_id": OPS, "payment_gateway_id": GATEWAY, "amount": "10.00",
        "status": "Processed", "type": "Capture", "payment_method_type": "Card", "refunded_amount": "0",
        "pending_refund_amount": "0", "applied_amount": "0", **MONEY})
    _insert(connection, "payment_gateway_log", {
        "id": LOG, "payment_gateway_id": GATEWAY, "reference_entity_id": PAYMENT, "interaction_type": "Capture",
        "interaction_status": "Success", "sf_ref_number": "k", "created_date": WHEN})


def test_0015_makes_existing_records_salesforce_mode_and_goes_down_only_without_external_ones(
        store_url, tmp_path, embedded_postgres):
    url = f"sqlite:///{tmp_path / 'external.db'}" if store_url.startswith("sqlite") else fresh_postgres_database(
        embedded_postgres, "om_mig_external")
    try:
        upgrade(url, "0014")
        with get_engine(url).begin() as connection:
            _store_at_0014(connection)

        upgrade(url)
        with session_scope(url) as s:
            payment = read_sobject(session=s, object_name="Payment", record_id=PAYMENT)
            authorization = read_sobject(session=s, object_name="PaymentAuthorization", record_id=AUTHORIZATION)
        assert (payment["ProcessingMode"], payment["PaymentGatewayId"]) == ("Salesforce", GATEWAY)
        assert (authorization["ProcessingMode"], authorization["PaymentGatewayId"]) == ("Salesforce", GATEWAY)
        columns = {c["name"]: c for c in inspect(get_engine(url)).get_columns("payment")}
        assert columns["payment_gateway_id"]["nullable"] and not columns["processing_mode"]["nullable"]

        with get_engine(url).begin() as connection:  # an External payment naming no gateway
            _insert(connection, "payment", {
                "id": EXTERNAL, "order_payment_summary_id": OPS, "amount": "5.00", "status": "Draft", "type": "Capture",
                "processing_mode": "External", "payment_method_type": "Card", "refunded_amount": "0",
                "pending_refund_amount": "0", "applied_amount": "0", **MONEY})
        with pytest.raises(RuntimeError, match="1 payment row"):
            downgrade(url, "0014")
        assert "processing_mode" in {c["name"] for c in inspect(get_engine(url)).get_columns("payment")}  # unchanged

        with get_engine(url).begin() as connection:
            connection.execute(text("DELETE FROM payment WHERE id = :id"), {"id": EXTERNAL})
            connection.execute(text("UPDATE order_payment_summary SET method = :m"), {"m": LONG_METHOD})
        with session_scope(url) as s:
            assert read_sobject(session=s, object_name="OrderPaymentSummary", record_id=OPS)["Method"] == LONG_METHOD
        with pytest.raises(RuntimeError, match="Method longer than"):
            downgrade(url, "0014")
        with get_engine(url).begin() as connection:
            connection.execute(text("UPDATE order_payment_summary SET method = 'Visa'"))
        downgrade(url, "0014")
        inspector = inspect(get_engine(url))
        for table in ("payment", "payment_authorization", "payment_gateway_log"):
            columns = {c["name"]: c for c in inspector.get_columns(table)}
            assert "processing_mode" not in columns and not columns["payment_gateway_id"]["nullable"]
        with get_engine(url).connect() as connection:
            kept = [connection.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                    for t in ("payment", "payment_authorization", "payment_gateway_log")]
        assert kept == [1, 1, 1]
    finally:
        if not store_url.startswith("sqlite"):
            drop_postgres_database(url)
