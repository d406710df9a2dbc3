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


def _keep_the_rollups(s, payment: str, invoice: str, *, applied: Decimal, paid: Decimal) -> None:
    from db.models import Invoice, Payment

    payer, owed = s.get(Payment, payment), s.get(Invoice, invoice)
    payer.applied_amount += applied
    owed.balance -= paid
    s.add_all([payer, owed])


def test_a_pending_payment_line_invoice_is_not_a_salesforce_record(store):
    """PaymentLineInvoice.Type is Salesforce's restricted picklist Applied/Unapplied (Object
    Reference v67): a Pending application (its capture not yet confirmed) stays in the ledger
    but GET answers NOT_FOUND and SOQL leaves it out; describe lists Applied and Unapplied."""
    from db.models import PaymentApplicationType as Kind, PaymentLineInvoice

    with session_scope(store) as s:
        order = make_order(s, payments=["50.00"], invoices=["30.00"])
        payment, invoice = order.payments[order.summaries[0]][0], order.invoice_ids[0]
        ids = {kind: _application(s, payment, invoice, kind) for kind in (Kind.APPLIED, Kind.PENDING, Kind.UNAPPLIED)}
        # The audit's rollups: AppliedAmount counts the Applied row; the invoice's balance, Applied and Pending.
        _keep_the_rollups(s, payment, invoice, applied=Decimal("5.00"), paid=Decimal("10.00"))
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


def test_a_gateway_log_reads_gateway_date_and_a_salesforce_length_message(store):
    """PaymentGatewayLog (Field Reference v67): GatewayDate is when the log was written,
    GatewayResultCodeDescription reads null, GatewayMessage is cut to its 255 characters in
    the view (the log keeps it whole); GET and SOQL agree."""
    from db.ids import new_id
    from db.models import InteractionType, PaymentGatewayLog

    with session_scope(store) as s:
        order = make_order(s, payments=["50.00"])
        log = PaymentGatewayLog(id=new_id("PaymentGatewayLog"), payment_gateway_id=order.gateway_id,
                                reference_entity_id=order.payments[order.summaries[0]][0],
                                interaction_type=InteractionType.CAPTURE, sf_ref_number="k", gateway_message="x" * 600)
        s.add(log)
        log_id = log.id
    with session_scope(store) as s:
        read = read_sobject(session=s, object_name="PaymentGatewayLog", record_id=log_id)
        _total, [row] = run(s, parse(f"SELECT GatewayDate, GatewayMessage, GatewayResultCodeDescription "
                                     f"FROM PaymentGatewayLog WHERE Id = '{log_id}'"), offset=0, batch=10)
        kept = s.get(PaymentGatewayLog, log_id).gateway_message
    assert read["GatewayDate"] == read["CreatedDate"] == row["GatewayDate"]
    assert read["GatewayMessage"] == row["GatewayMessage"] == "x" * 255 and len(kept) == 600
    assert read["GatewayResultCodeDescription"] is None is row["GatewayResultCodeDescription"]


def test_a_payment_gateway_takes_salesforces_reference_fields_and_keeps_them_nowhere(store):
    from db.models import PaymentGateway, PaymentGatewayCreate
    from db.sobjects import create_sobject

    with session_scope(store) as s:
        made = create_sobject(session=s, object_name="PaymentGateway", fields={
            "PaymentGatewayName": "sf shaped", "GatewayProvider": "Sandbox", "Status": "Active",
            "MerchantCredentialId": "0XAAAAAAAAAAAAAAAA", "PaymentGatewayProviderId": "0cJAAAAAAAAAAAAAAA",
            "ExternalReference": "ext-1"}).id
    with session_scope(store) as s:
        read = read_sobject(session=s, object_name="PaymentGateway", record_id=made)
        assert s.get(PaymentGateway, made).payment_gateway_name == "sf shaped"
    assert "MerchantCredentialId" not in read and read["Status"] == "Active"
    assert PaymentGatewayCreate.IGNORED == {"merchant_credential_id", "payment_gateway_provider_id", "external_reference"}


def test_order_summaries_and_return_orders_read_their_life_cycle_types(store):
    """OrderSummary.OrderLifeCycleType MANAGED (Connect Order Summary Input: MANAGED or
    UNMANAGED) and ReturnOrder.LifeCycleType Managed (Return Order Input: Managed or
    Unmanaged): every record here is managed. Selectable in SOQL, not filterable."""
    from db.soql import MalformedQueryError

    with session_scope(store) as s:
        order = make_order(s, payments=["50.00"])
    with session_scope(store) as s:
        read = read_sobject(session=s, object_name="OrderSummary", record_id=order.order_summary_id)
        _total, [row] = run(s, parse(f"SELECT OrderLifeCycleType FROM OrderSummary WHERE Id = '{order.order_summary_id}'"),
                            offset=0, batch=10)
        with pytest.raises(MalformedQueryError):
            run(s, parse("SELECT Id FROM OrderSummary WHERE OrderLifeCycleType = 'MANAGED'"), offset=0, batch=10)
    assert read["OrderLifeCycleType"] == row["OrderLifeCycleType"] == "MANAGED"
    described = {f["name"] for f in describe_sobject("ReturnOrder", "/x")["fields"]}
    assert "LifeCycleType" in described
