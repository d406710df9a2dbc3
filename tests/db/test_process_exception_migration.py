"""Migration 0016: ProcessException gets Salesforce's CaseId (existing rows name no case);
down again only while no row names one."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from db.engine import get_engine, session_scope
from db.migrate import downgrade, upgrade
from db.sobjects import read_sobject
from tests.conftest import drop_postgres_database, fresh_postgres_database

EXCEPTION, ORDER, CASE = "1PeAAAAAAAAAAAAAAA", "1OsAAAAAAAAAAAAAAA", "500AAAAAAAAAAAAAAA"


def test_0016_adds_case_id_and_goes_down_only_while_no_exception_names_a_case(store_url, tmp_path, embedded_postgres):
    url = f"sqlite:///{tmp_path / 'case.db'}" if store_url.startswith("sqlite") else fresh_postgres_database(
        embedded_postgres, "om_mig_case")
    try:
        upgrade(url, "0015")
        with get_engine(url).begin() as connection:
            connection.execute(text(
                "INSERT INTO process_exception (id, attached_to_id, order_summary_id, category, severity, status, message, "
                "created_date) VALUES (:id, :o, :o, 'Payment', 'High', 'New', 'declined', '2026-01-01T00:00:00+00:00')"),
                {"id": EXCEPTION, "o": ORDER})
        upgrade(url)
        with session_scope(url) as s:
            read = read_sobject(session=s, object_name="ProcessException", record_id=EXCEPTION)
        assert (read["CaseId"], read["Priority"], read["Message"]) == (None, None, "declined")

        with get_engine(url).begin() as connection:
            connection.execute(text("UPDATE process_exception SET case_id = :c"), {"c": CASE})
        with pytest.raises(RuntimeError, match="1 process_exception row"):
            downgrade(url, "0015")
        assert "case_id" in {c["name"] for c in inspect(get_engine(url)).get_columns("process_exception")}

        with get_engine(url).begin() as connection:
            connection.execute(text("UPDATE process_exception SET case_id = NULL"))
        downgrade(url, "0015")
        assert "case_id" not in {c["name"] for c in inspect(get_engine(url)).get_columns("process_exception")}
    finally:
        if not store_url.startswith("sqlite"):
            drop_postgres_database(url)
