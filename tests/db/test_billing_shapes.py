"""CreditMemo and Invoice in Salesforce's names (Field Reference v67): ReferenceEntityId is the
order summary (OrderSummaryId is our extra, and a deprecated alias on create); TotalAmount is
pretax, TotalTaxAmount the tax, TotalAmountWithTax their sum (the ledger's total)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from pydantic import ValidationError

from db.engine import session_scope
from domain.errors import InvalidInputError
from db.models import CreditMemo, Invoice
from db.soql import parse, run
from db.sobjects import create_sobject, describe_sobject, read_sobject
from tests.factories import make_order
from tests.ledger import assert_ledger_invariants, snapshot

AMOUNTS = ("TotalAmount", "TotalTaxAmount", "TotalAmountWithTax", "Balance")


def _figures(record: dict) -> tuple[D, ...]:
    return tuple(D(str(record[name])) for name in AMOUNTS)


@pytest.mark.parametrize("object_name, table", [("CreditMemo", CreditMemo), ("Invoice", Invoice)])
def test_create_takes_pretax_and_tax_and_reads_them_back_by_salesforces_names(store, object_name, table):
    with session_scope(store) as s:
        order = make_order(s, payments=["50.00"]).order_summary_id
    with session_scope(store) as s:
        made = create_sobject(session=s, object_name=object_name, fields={
            "ReferenceEntityId": order, "TotalAmount": D("20.00"), "TotalTaxAmount": D("1.65"), "Description": "d"})
        record_id = made.id
    with session_scope(store) as s:
        stored = s.get(table, record_id)
        assert (stored.total_amount, stored.total_tax_amount, stored.balance) == (D("21.65"), D("1.65"), D("21.65"))
        read = read_sobject(session=s, object_name=object_name, record_id=record_id)
        total, rows = run(s, parse(f"SELECT Id, {', '.join(AMOUNTS)}, ReferenceEntityId, OrderSummaryId "
                                   f"FROM {object_name} WHERE ReferenceEntityId = '{order}'"), offset=0, batch=10)
    assert _figures(read) == (D("20.00"), D("1.65"), D("21.65"), D("21.65"))
    assert read["ReferenceEntityId"] == read["OrderSummaryId"] == order and read["Description"] == "d"
    assert total == 1 and _figures(rows[0]) == _figures(read)
    assert rows[0]["ReferenceEntityId"] == rows[0]["OrderSummaryId"] == order
    described = {f["name"]: f for f in describe_sobject(object_name, "/x")["fields"]}
    assert {"ReferenceEntityId", "OrderSummaryId", *AMOUNTS} <= described.keys()
    assert all(described[name]["createable"] for name in ("ReferenceEntityId", "TotalAmount", "TotalTaxAmount"))
    assert not described["TotalAmountWithTax"]["createable"] and described["TotalAmount"]["type"] == "double"
    assert_ledger_invariants(store)


def test_order_summary_id_is_a_deprecated_alias_of_reference_entity_id(store):
    with session_scope(store) as s:
        order = make_order(s, payments=["50.00"]).order_summary_id
    with session_scope(store) as s:
        alone = create_sobject(session=s, object_name="CreditMemo", fields={"OrderSummaryId": order, "TotalAmount": "5"}).id
        both = create_sobject(session=s, object_name="Invoice", fields={
            "OrderSummaryId": order, "ReferenceEntityId": order, "TotalAmount": "5"}).id
    with session_scope(store) as s:
        for name, record_id in (("CreditMemo", alone), ("Invoice", both)):
            read = read_sobject(session=s, object_name=name, record_id=record_id)
            assert read["ReferenceEntityId"] == order and _figures(read) == (D("5.00"), D("0.00"), D("5.00"), D("5.00"))


@pytest.mark.parametrize("fields, named", [
    ({"ReferenceEntityId": "1OsAAAAAAAAAAAAAAA", "OrderSummaryId": "1OsBBBBBBBBBBBBBBB", "TotalAmount": "5"},
     ["OrderSummaryId", "ReferenceEntityId"]),
    ({"TotalAmount": "5"}, ["ReferenceEntityId"]),
    ({"ReferenceEntityId": "1OsAAAAAAAAAAAAAAA", "TotalAmount": "5", "TotalTaxAmount": "-1"}, ["TotalTaxAmount"]),
    ({"ReferenceEntityId": "1OsAAAAAAAAAAAAAAA", "TotalAmount": "5", "TotalAmountWithTax": "6"}, ["TotalAmountWithTax"]),
])
def test_a_bad_order_summary_link_or_amount_is_refused_naming_the_fields(store, fields, named):
    before = snapshot(store)
    with pytest.raises(ValidationError) as refused:
        with session_scope(store) as s:
            create_sobject(session=s, object_name="CreditMemo", fields=fields)
    text = str(refused.value)
    assert all(name in text for name in named)
    assert snapshot(store) == before



def test_lines_are_read_only_sobjects_in_salesforces_names(store):
    """CreditMemoLine / InvoiceLine (Field Reference v67): GET, SOQL by their document's Id
    (CreditMemoId / InvoiceId are indexed), describe; never created by a caller."""
    from actions.change_orders import ChangeItem, CreateCreditMemoInput, SubmitCancelInput
    from actions.change_orders import create_credit_memo_from_change_orders, submit_cancel_items
    from actions.fulfillment import FulfillItemsInput, FulfillmentItem, fulfill_and_invoice
    from tests.factories import make_order_with_items

    order, (mug,) = make_order_with_items(store, payments=("40.00",), items=(("mug", "9.99", "3", "3.00"),))
    with session_scope(store) as s:
        change = submit_cancel_items(session=s, order_summary_id=order.order_summary_id, request=SubmitCancelInput(
            change_items=[ChangeItem(order_item_summary_id=mug, quantity=D(1))]))
        memo = create_credit_memo_from_change_orders(session=s, order_summary_id=order.order_summary_id,
                                                     request=CreateCreditMemoInput(change_order_ids=[change.id])).id
        invoice = fulfill_and_invoice(session=s, order_summary_id=order.order_summary_id, request=FulfillItemsInput(
            fulfillment_items=[FulfillmentItem(order_item_summary_id=mug, quantity=D(2))])).id
    for name, link, document, expected in (("CreditMemoLine", "CreditMemoId", memo, (D("9.99"), D("1.00"))),
                                           ("InvoiceLine", "InvoiceId", invoice, (D("19.98"), D("2.00")))):
        with session_scope(store) as s:
            total, rows = run(s, parse(f"SELECT Id, {link}, Name, Type, ChargeAmount, ChargeTaxAmount, TaxAmount, "
                                       f"ChargeAmountWithTax, LineAmount FROM {name} WHERE {link} = '{document}'"),
                              offset=0, batch=10)
            read = read_sobject(session=s, object_name=name, record_id=rows[0]["Id"])
            header = read_sobject(session=s, object_name=name.removesuffix("Line"), record_id=document)
        assert total == 1 and rows[0] == {key: read[key] for key in rows[0]}
        assert (read[link], read["Name"]) == (document, "mug")
        charge, tax = expected
        assert [read[f] for f in ("ChargeAmount", "ChargeTaxAmount", "TaxAmount", "ChargeAmountWithTax", "LineAmount")] == [
            charge, tax, tax, charge + tax, charge + tax]
        assert (header["TotalAmount"], header["TotalTaxAmount"]) == (charge, tax)  # the document: the sum of its lines
        described = describe_sobject(name, "/x")
        assert described["createable"] is False
        assert {link, "ChargeAmount", "ChargeTaxAmount", "ChargeAmountWithTax"} <= {f["name"] for f in described["fields"]}
        before = snapshot(store)
        with pytest.raises(InvalidInputError):
            with session_scope(store) as s:
                create_sobject(session=s, object_name=name, fields={link: document, "Name": "x"})
        assert snapshot(store) == before
    assert_ledger_invariants(store)
