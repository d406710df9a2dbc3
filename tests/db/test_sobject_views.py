"""What the sObject view shows of the ledger (issue 14, audit rows 53, 55, 50, 58-60):
Salesforce's objects and values only, read the same by GET and by SOQL."""

from __future__ import annotations

from decimal import Decimal

import pytest

from db.engine import session_scope
from db.soql import parse, run
from db.sobjects import describe_sobject, read_sobject
from domain.errors import NotFoundError
from tests.factories import make_order


def _application(s, payment: str, invoice: str, kind) -> str:
    from db.ids import new_id
    from db.models import PaymentLineInvoice

    row = PaymentLineInvoice(id=new_id("PaymentLineInvoice"), payment_id=payment, invoice_id=invoice,
                             amount=Decimal("5.00"), currency_iso_code="USD", type=kind)
    s.add(row)
    return row.id


def test_a_pending_payment_line_invoice_is_not_a_salesforce_record(store):
    """PaymentLineInvoice.Type is Salesforce's restricted picklist Applied/Unapplied (Object
    Reference v67): a Pending application (its capture not yet confirmed) stays in the ledger
    but GET answers NOT_FOUND and SOQL leaves it out; describe lists Applied and Unapplied."""
    from db.models import PaymentApplicationType as Kind, PaymentLineInvoice

    with session_scope(store) as s:
        order = make_order(s, payments=["50.00"], invoices=["30.00"])
        payment, invoice = order.payments[order.summaries[0]][0], order.invoice_ids[0]
        ids = {kind: _application(s, payment, invoice, kind) for kind in (Kind.APPLIED, Kind.PENDING, Kind.UNAPPLIED)}
    with session_scope(store) as s:
        assert read_sobject(session=s, object_name="PaymentLineInvoice", record_id=ids[Kind.APPLIED])["Type"] == "Applied"
        with pytest.raises(NotFoundError):
            read_sobject(session=s, object_name="PaymentLineInvoice", record_id=ids[Kind.PENDING])
        total, rows = run(s, parse(f"SELECT Id, Type FROM PaymentLineInvoice WHERE InvoiceId = '{invoice}' "
                                   "ORDER BY Id"), offset=0, batch=10)
        assert s.get(PaymentLineInvoice, ids[Kind.PENDING]) is not None  # the ledger keeps it
    assert total == 2 and sorted(r["Type"] for r in rows) == ["Applied", "Unapplied"]
    assert ids[Kind.PENDING] not in {r["Id"] for r in rows}
    [kind] = [f for f in describe_sobject("PaymentLineInvoice", "/x")["fields"] if f["name"] == "Type"]
    assert [v["value"] for v in kind["picklistValues"]] == ["Applied", "Unapplied"]
