"""Migration 0014: credit memos and invoices get total_tax_amount, backfilled from their lines."""

from __future__ import annotations

from decimal import Decimal as D

from sqlalchemy import inspect, text

from db.engine import get_engine, session_scope
from db.migrate import downgrade, upgrade
from db.sobjects import read_sobject
from tests.conftest import drop_postgres_database, fresh_postgres_database

WHEN = "2026-01-01T00:00:00+00:00"
ORDER = "1OsAAAAAAAAAAAAAAA"
TAXED_MEMO, BARE_MEMO, UNTAXED_MEMO = "50gAAAAAAAAAAAAAAA", "50gBBBBBBBBBBBBBBB", "50gCCCCCCCCCCCCCCC"
TAXED_INVOICE = "3ttAAAAAAAAAAAAAAA"


def _insert(connection, table: str, values: dict) -> None:
    columns = ", ".join(values)
    connection.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in values)})"), values)


def _document(table: str, record_id: str, total: str) -> dict:
    return {"id": record_id, "order_summary_id": ORDER, "total_amount": total, "currency_iso_code": "USD",
            "balance": total, "status": "Posted", "created_date": WHEN}


def _line(table: str, link: str, record_id: str, document_id: str, charge: str, tax: str) -> dict:
    return {"id": record_id, link: document_id, "name": "line", "type": "Charge", "charge_amount": charge,
            "tax_amount": tax, "created_date": WHEN}


def test_0014_backfills_the_tax_of_documents_from_their_lines_and_goes_down(store_url, tmp_path, embedded_postgres):
    """A store at 0013 with a credit memo of two taxed lines, one without lines, one whose
    lines carry no tax, and a taxed invoice: at head each reads TotalTaxAmount = its lines'
    tax, TotalAmountWithTax = what it was, TotalAmount = the difference; 0013 again drops
    the column and keeps every row."""
    url = f"sqlite:///{tmp_path / 'tax.db'}" if store_url.startswith("sqlite") else fresh_postgres_database(
        embedded_postgres, "om_mig_tax")
    try:
        upgrade(url, "0013")
        engine = get_engine(url)
        with engine.begin() as connection:
            _insert(connection, "order_summary", {"id": ORDER, "order_number": "X", "currency_iso_code": "USD",
                                                  "status": "Created", "created_date": WHEN})
            _insert(connection, "credit_memo", _document("credit_memo", TAXED_MEMO, "23.54"))
            _insert(connection, "credit_memo_line", _line("credit_memo_line", "credit_memo_id", "50hAAAAAAAAAAAAAAA",
                                                          TAXED_MEMO, "9.99", "1.00"))
            _insert(connection, "credit_memo_line", _line("credit_memo_line", "credit_memo_id", "50hBBBBBBBBBBBBBBB",
                                                          TAXED_MEMO, "11.00", "1.55"))
            _insert(connection, "credit_memo", _document("credit_memo", BARE_MEMO, "30.00"))
            _insert(connection, "credit_memo", _document("credit_memo", UNTAXED_MEMO, "5.00"))
            _insert(connection, "credit_memo_line", _line("credit_memo_line", "credit_memo_id", "50hCCCCCCCCCCCCCCC",
                                                          UNTAXED_MEMO, "5.00", "0"))
            _insert(connection, "invoice", _document("invoice", TAXED_INVOICE, "11.11"))
            _insert(connection, "invoice_line", _line("invoice_line", "invoice_id", "3tuAAAAAAAAAAAAAAA",
                                                      TAXED_INVOICE, "10.10", "1.01"))

        upgrade(url)
        with session_scope(url) as s:
            read = {record_id: read_sobject(session=s, object_name=name, record_id=record_id) for name, record_id in (
                ("CreditMemo", TAXED_MEMO), ("CreditMemo", BARE_MEMO), ("CreditMemo", UNTAXED_MEMO),
                ("Invoice", TAXED_INVOICE))}
        figures = {r: (D(str(v["TotalAmount"])), D(str(v["TotalTaxAmount"])), D(str(v["TotalAmountWithTax"])),
                       D(str(v["Balance"]))) for r, v in read.items()}
        assert figures == {
            TAXED_MEMO: (D("20.99"), D("2.55"), D("23.54"), D("23.54")),
            BARE_MEMO: (D("30.00"), D("0.00"), D("30.00"), D("30.00")),
            UNTAXED_MEMO: (D("5.00"), D("0.00"), D("5.00"), D("5.00")),
            TAXED_INVOICE: (D("10.10"), D("1.01"), D("11.11"), D("11.11")),
        }
        assert {r: v["ReferenceEntityId"] for r, v in read.items()} == dict.fromkeys(read, ORDER)

        downgrade(url, "0013")
        columns = {t: {c["name"] for c in inspect(get_engine(url)).get_columns(t)} for t in ("credit_memo", "invoice")}
        assert all("total_tax_amount" not in c and "total_amount" in c for c in columns.values())
        with get_engine(url).connect() as connection:
            kept = dict(connection.execute(text("SELECT id, total_amount FROM credit_memo")).all())
            kept |= dict(connection.execute(text("SELECT id, total_amount FROM invoice")).all())
            lines = connection.execute(text("SELECT count(*) FROM credit_memo_line")).scalar()
        assert {r: D(str(v)) for r, v in kept.items()} == {
            TAXED_MEMO: D("23.54"), BARE_MEMO: D("30.00"), UNTAXED_MEMO: D("5.00"), TAXED_INVOICE: D("11.11")}
        assert lines == 3
    finally:
        if not store_url.startswith("sqlite"):
            drop_postgres_database(url)
