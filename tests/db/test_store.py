"""The store on each backend: exact money, timezone-aware timestamps, migrations, sObjects."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal as D

import pytest
from pydantic import ValidationError

from db.engine import session_scope
from db.migrate import downgrade, upgrade
from db.models import CreditMemo, OrderPaymentSummary, Payment
from db.sobjects import create_sobject, read_sobject
from domain.errors import InvalidInputError, NotFoundError
from tests.factories import make_order
from tests.ledger import assert_ledger_invariants, snapshot


def test_amounts_round_trip_exactly(store):
    with session_scope(store) as s:
        order = make_order(s, payments=["12345678901.23", "0.01"], credit_memo="0.07")
    with session_scope(store) as s:
        first = s.get(OrderPaymentSummary, order.summaries[0])
        assert first.captured_amount == D("12345678901.23")
        assert str(s.get(CreditMemo, order.credit_memo_id).balance) == "0.07"
        assert s.get(Payment, order.payments[order.summaries[1]][0]).amount == D("0.01")
        assert first.created_date.tzinfo is not None and first.created_date.utcoffset() == UTC.utcoffset(None)


def test_processed_payment_raises_captured_amount(store):
    with session_scope(store) as s:
        order = make_order(s, payments=[["30.00", "12.50"]])
        record = read_sobject(session=s, object_name="OrderPaymentSummary", record_id=order.summaries[0])
    assert record["CapturedAmount"] == D("42.50") and record["AvailableToRefundAmount"] == D("42.50")
    assert record["BalanceAmount"] == D("42.50") and record["RefundedAmount"] == D("0.00")
    assert_ledger_invariants(store)


@pytest.mark.parametrize("object_name, fields, error", [
    ("OrderSummary", {"OrderNumber": "1", "CurrencyIsoCode": "US"}, InvalidInputError),
    ("OrderSummary", {"OrderNumber": "1", "Bogus": 1}, ValidationError),
    ("CreditMemo", {"OrderSummaryId": "1OsAAAAAAAAAAAAAAA", "TotalAmount": "5.00"}, NotFoundError),
    ("CreditMemo", {"OrderSummaryId": "bad id", "TotalAmount": "5.00"}, ValidationError),
    ("Refund", {"Amount": "1.00"}, InvalidInputError),
    ("Nonsense", {}, NotFoundError),
])
def test_bad_sobject_creates_change_nothing(store, object_name, fields, error):
    before = snapshot(store)
    with pytest.raises(error):
        with session_scope(store) as s:
            create_sobject(session=s, object_name=object_name, fields=fields)
    assert snapshot(store) == before


def test_amount_finer_than_the_currency_is_refused(store):
    with session_scope(store) as s:
        order = make_order(s, payments=["10.00"])
    before = snapshot(store)
    with pytest.raises(InvalidInputError):
        with session_scope(store) as s:
            create_sobject(session=s, object_name="CreditMemo",
                           fields={"OrderSummaryId": order.order_summary_id, "TotalAmount": D("1.005")})
    assert snapshot(store) == before


def test_migrations_go_down_and_up_again(store_url, tmp_path, embedded_postgres):
    """On a fresh database of the same backend: upgrade, downgrade to nothing, upgrade."""
    from sqlalchemy import inspect

    from db.engine import get_engine
    from tests.conftest import fresh_postgres_database

    if store_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        url = fresh_postgres_database(embedded_postgres, "om_mig")
    upgrade(url)
    assert {"refund", "credit_memo", "payment_gateway_log"} <= set(inspect(get_engine(url)).get_table_names())
    downgrade(url)
    assert set(inspect(get_engine(url)).get_table_names()) <= {"alembic_version"}
    upgrade(url)
    assert "refund" in inspect(get_engine(url)).get_table_names()
    if not store_url.startswith("sqlite"):
        from tests.conftest import drop_postgres_database

        drop_postgres_database(url)


def test_migrations_keep_the_rows_of_a_store_in_use(store_url, tmp_path, embedded_postgres):
    """A store at 0003 with invoices and change orders that other rows point at is upgraded
    and downgraded with every row kept (SQLite rebuilds such tables by copying them)."""
    from sqlalchemy import text

    from db.engine import get_engine
    from tests.conftest import drop_postgres_database, fresh_postgres_database

    url = f"sqlite:///{tmp_path / 'in-use.db'}" if store_url.startswith("sqlite") else fresh_postgres_database(
        embedded_postgres, "om_mig_rows")
    upgrade(url, "0003")
    when = "2026-01-01T00:00:00+00:00"
    rows = [
        ("order_summary", {"id": "1OsAAAAAAAAAAAAAAA", "order_number": "X", "currency_iso_code": "USD", "status": "Created"}),
        ("invoice", {"id": "3ttAAAAAAAAAAAAAAA", "order_summary_id": "1OsAAAAAAAAAAAAAAA", "total_amount": "5.00",
                     "currency_iso_code": "USD", "balance": "5.00", "status": "Posted"}),
        ("invoice_line", {"id": "3tuAAAAAAAAAAAAAAA", "invoice_id": "3ttAAAAAAAAAAAAAAA", "name": "fee", "type": "Charge",
                          "charge_amount": "5.00", "tax_amount": "0"}),
        ("change_order", {"id": "801AAAAAAAAAAAAAAA", "order_summary_id": "1OsAAAAAAAAAAAAAAA", "type": "Fee",
                          "currency_iso_code": "USD", "total_amount": "-5.00", "total_tax_amount": "0",
                          "invoice_id": "3ttAAAAAAAAAAAAAAA"}),
        ("change_order_item", {"id": "802AAAAAAAAAAAAAAA", "change_order_id": "801AAAAAAAAAAAAAAA", "name": "fee",
                               "quantity": "1", "amount": "-5.00", "tax_amount": "0", "currency_iso_code": "USD"}),
    ]
    engine = get_engine(url)
    with engine.begin() as connection:
        for table, values in rows:
            values = {**values, "created_date": when} if table != "change_order_item" else values
            columns = ", ".join(values)
            connection.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in values)})"), values)

    def counts():
        with engine.connect() as connection:
            return [connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() for table, _ in rows]

    try:
        upgrade(url)
        assert counts() == [1] * len(rows)
        downgrade(url, "0003")
        assert counts() == [1] * len(rows)
    finally:
        if not store_url.startswith("sqlite"):
            drop_postgres_database(url)


def test_the_tables_match_the_migrations(store_url):
    """Alembic sees nothing to generate: every model change came with its migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    from db.engine import get_engine
    from db.migrate import include_object

    with get_engine(store_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": include_object})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_the_sandbox_books_match_the_migrations_that_made_them(store_url):
    """The sandbox's own tables, as it would create them, are those migrations 0001 and 0002
    made in the store's database; Alembic leaves exactly those to the sandbox."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from db.engine import get_engine
    from db.migrate import NOT_THE_STORES
    from gateways.sandbox_ledger import metadata

    assert set(metadata.tables) == NOT_THE_STORES
    with get_engine(store_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": True, "include_object": lambda obj, name, type_, *_: type_ != "table" or name in NOT_THE_STORES})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_an_authorization_raises_the_summarys_authorization_amount(store):
    with session_scope(store) as s:
        order = make_order(s, payments=["10.00"])
        authorization = create_sobject(session=s, object_name="PaymentAuthorization", fields={
            "OrderPaymentSummaryId": order.summaries[0], "PaymentGatewayId": order.gateway_id, "Amount": D("75.50")})
    with session_scope(store) as s:
        summary = read_sobject(session=s, object_name="OrderPaymentSummary", record_id=order.summaries[0])
        public = read_sobject(session=s, object_name="PaymentAuthorization", record_id=authorization.id)
    assert summary["AuthorizationAmount"] == D("75.50") and summary["AvailableToCaptureAmount"] == D("65.50")
    assert public["AvailableToCaptureAmount"] == D("75.50") and public["GatewayRefNumber"].startswith("auth_sbx_")
    assert_ledger_invariants(store)


def test_a_row_read_for_update_replaces_what_the_session_held(store):
    """The session loaded a payment before locking it; another writer changed it meanwhile:
    the locked read must see the other writer's value, or an increment would lose it."""
    from db.ledger import get_or_raise
    from db.models import Payment

    with session_scope(store) as s:
        order = make_order(s, payments=["50.00"])
    payment_id = order.payments[order.summaries[0]][0]
    with session_scope(store) as first:
        stale = first.get(Payment, payment_id)
        assert stale.gateway_ref_number.startswith("ch_sbx_")
        first.commit()  # end the read transaction (SQLite would otherwise block the other writer)
        with session_scope(store) as other:  # a field outside the ledger: the shared store stays consistent
            other.get(Payment, payment_id).gateway_ref_number = "ch_changed_meanwhile"
        locked = get_or_raise(first, Payment, payment_id, for_update=True)
        assert locked is stale and locked.gateway_ref_number == "ch_changed_meanwhile"
