"""sObject errors in the REST API's shape (issue 14): ``[{"message", "errorCode", "fields"}]``,
as simple-salesforce hands them over in ``.content``; a missing record or object type is
NOT_FOUND; a bad create changes nothing. (Connect resources keep "Error with Output".)"""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from db.engine import session_scope
from tests.e2e.test_ensure_refunds_async import ACTION, set_up_order, wait_for_operation
from tests.ledger import assert_ledger_invariants, snapshot

pytestmark = pytest.mark.e2e


def only_error(exc) -> dict:
    [error] = exc.value.content
    assert set(error) == {"message", "errorCode", "fields"}, error
    return error


def test_a_missing_record_or_object_type_is_not_found(sf, engine):
    with pytest.raises(SalesforceResourceNotFound) as missing:
        sf.CreditMemo.get("50gAAAAAAAAAAAAAAA")
    assert only_error(missing)["errorCode"] == "NOT_FOUND"
    with pytest.raises(SalesforceResourceNotFound) as unknown:
        sf.Opportunity.get("006AAAAAAAAAAAAAAA")
    error = only_error(unknown)
    assert error["errorCode"] == "NOT_FOUND" and error["message"].startswith("The requested resource does not exist")


def test_bad_fields_are_named_in_fields_and_nothing_is_written(sf, engine):
    before = snapshot(engine.store_url)
    with pytest.raises(SalesforceMalformedRequest) as unknown_field:
        sf.OrderSummary.create({"OrderNumber": f"E-{uuid.uuid4().hex[:6]}", "CurrencyIsoCode": "USD", "Nonsense": 1})
    error = only_error(unknown_field)
    assert (error["errorCode"], error["fields"]) == ("INVALID_FIELD", ["Nonsense"])
    with pytest.raises(SalesforceMalformedRequest) as missing_field:
        sf.OrderPaymentSummary.create({"Method": "Card"})
    error = only_error(missing_field)
    assert (error["errorCode"], error["fields"]) == ("REQUIRED_FIELD_MISSING", ["OrderSummaryId"])
    assert snapshot(engine.store_url) == before


def test_credit_memo_and_invoice_speak_salesforces_names_through_rest_query_and_describe(sf, engine):
    """ReferenceEntityId is the order summary (OrderSummaryId our extra, and a deprecated
    alias on create); TotalAmount pretax, TotalTaxAmount, TotalAmountWithTax: the same
    figures by GET and by SOQL; two different order summaries are refused, naming both."""
    order, _summaries, _memo, _invoices = set_up_order(sf, payments=[50])
    amounts = ("TotalAmount", "TotalTaxAmount", "TotalAmountWithTax", "Balance")
    for kind in (sf.CreditMemo, sf.Invoice):
        made = kind.create({"ReferenceEntityId": order, "TotalAmount": 20, "TotalTaxAmount": 1.65})["id"]
        read = kind.get(made)
        assert [D(str(read[f])) for f in amounts] == [D("20.00"), D("1.65"), D("21.65"), D("21.65")]
        assert read["ReferenceEntityId"] == read["OrderSummaryId"] == order
        [row] = sf.query(f"SELECT {', '.join(amounts)}, ReferenceEntityId FROM {kind.name} WHERE Id = '{made}'")["records"]
        assert [D(str(row[f])) for f in amounts] == [D(str(read[f])) for f in amounts]
        assert row["ReferenceEntityId"] == order
        fields = {f["name"]: f for f in kind.describe()["fields"]}
        assert {"ReferenceEntityId", "OrderSummaryId", *amounts} <= fields.keys()
        assert fields["ReferenceEntityId"]["createable"] and not fields["TotalAmountWithTax"]["createable"]
    other = sf.OrderSummary.create({"OrderNumber": f"O-{uuid.uuid4().hex[:6]}", "CurrencyIsoCode": "USD"})["id"]
    before = snapshot(engine.store_url)
    with pytest.raises(SalesforceMalformedRequest) as differing:
        sf.CreditMemo.create({"ReferenceEntityId": order, "OrderSummaryId": other, "TotalAmount": 5})
    error = only_error(differing)
    assert error["fields"] == ["OrderSummaryId"] and "ReferenceEntityId" in error["message"]
    assert snapshot(engine.store_url) == before


def test_connect_resources_keep_error_with_output(sf, engine):
    with pytest.raises(SalesforceResourceNotFound) as missing:
        sf.restful("commerce/order-management/order-summaries/1OsAAAAAAAAAAAAAAA/async-actions/ensure-refunds-async",
                   method="POST", json={"excessFundsAmount": 1})
    [error] = missing.value.content
    assert set(error) == {"errorCode", "message", "output", "enhancedErrorType"}


def test_describe_global_describe_and_record_urls_as_simple_salesforce_reads_them(sf, engine):
    """describe() of every object, describe of one (fields from its models: createable =
    in its Create model), its basic information, and attributes.url on a record."""
    described = sf.describe()
    names = {o["name"]: o for o in described["sobjects"]}
    assert names["OrderPaymentSummary"]["keyPrefix"] == "0aP" and names["OrderPaymentSummary"]["createable"] is True
    assert names["Refund"]["createable"] is False
    ops = sf.OrderPaymentSummary.describe()
    fields = {f["name"]: f for f in ops["fields"]}
    assert fields["OrderSummaryId"]["type"] == "reference" and fields["OrderSummaryId"]["createable"] is True
    assert fields["AvailableToRefundAmount"]["type"] == "double" and fields["AvailableToRefundAmount"]["createable"] is False
    assert fields["Id"]["type"] == "id"
    assert sf.OrderPaymentSummary.metadata()["objectDescribe"]["name"] == "OrderPaymentSummary"
    order = sf.OrderSummary.create({"OrderNumber": f"D-{uuid.uuid4().hex[:6]}", "CurrencyIsoCode": "USD"})["id"]
    record = sf.OrderSummary.get(order)
    assert record["attributes"] == {"type": "OrderSummary", "url": f"/services/data/v60.0/sobjects/OrderSummary/{order}"}
    with pytest.raises(SalesforceResourceNotFound):
        sf.Opportunity.describe()


def test_a_person_resolves_a_process_exception_and_nothing_else_is_updatable(sf, engine):
    """sf.ProcessException.update(id, {"Status": "Resolved"}) answers 204; a field that tells
    what happened, a ledger record and a value outside the picklist are refused."""
    from db.ledger import add_process_exception

    order, *_ = set_up_order(sf, payments=[10.00])
    with session_scope(engine.store_url) as session:
        exception_id = add_process_exception(session, attached_to_id=order, order_summary_id=order, message="look at me").id
    assert sf.ProcessException.update(exception_id, {"Status": "Resolved", "Description": "refunded by hand"}) == 204
    resolved = sf.ProcessException.get(exception_id)
    assert (resolved["Status"], resolved["Description"], resolved["Message"]) == ("Resolved", "refunded by hand", "look at me")
    before = snapshot(engine.store_url)
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.ProcessException.update(exception_id, {"Message": "rewritten"})
    assert (only_error(refused)["errorCode"], only_error(refused)["fields"]) == ("INVALID_FIELD", ["Message"])
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.ProcessException.update(exception_id, {"Status": "Done"})
    assert only_error(refused)["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    with pytest.raises(SalesforceMalformedRequest):
        sf.OrderSummary.update(order, {"Status": "Closed"})
    assert snapshot(engine.store_url) == before
    assert sf.ProcessException.describe()["updateable"] is True


def test_a_delete_is_refused_in_salesforce_s_shape_and_deletes_nothing(sf, engine):
    """sf.X.delete(id): every record is part of the money's history, so DELETE_FAILED (a
    ProcessException is closed with a Status instead); a missing record is NOT_FOUND."""
    from db.ledger import add_process_exception

    order, *_ = set_up_order(sf, payments=[10.00])
    with session_scope(engine.store_url) as session:
        exception_id = add_process_exception(session, attached_to_id=order, order_summary_id=order, message="x").id
    before = snapshot(engine.store_url)
    for object_name, record_id in (("OrderSummary", order), ("ProcessException", exception_id)):
        with pytest.raises(SalesforceMalformedRequest) as refused:
            getattr(sf, object_name).delete(record_id)
        assert only_error(refused)["errorCode"] == "DELETE_FAILED" and only_error(refused)["fields"] == []
    assert "Voided" in only_error(refused)["message"]
    with pytest.raises(SalesforceResourceNotFound) as missing:
        sf.ProcessException.delete("1Pe000000000000AAA")
    assert missing.value.content[0]["errorCode"] == "NOT_FOUND"
    assert snapshot(engine.store_url) == before


def test_a_process_exception_is_created_as_salesforce_creates_one_and_names_its_case(sf, engine):
    """POST sobjects/ProcessException (Salesforce supports create, Object Reference v67):
    AttachedToId and Message required, Category defaulted (Order Activation); CaseId is read,
    created and updated; Priority reads null (the engine sets none). A refused create or
    update changes nothing."""
    order, *_ = set_up_order(sf, payments=[10.00])
    case = "500AAAAAAAAAAAAAAA"
    made = sf.ProcessException.create({"AttachedToId": order, "OrderSummaryId": order, "Message": "call the customer",
                                       "Category": "Payment", "CaseId": case})["id"]
    read = sf.ProcessException.get(made)
    assert (read["AttachedToId"], read["Message"], read["Category"], read["CaseId"], read["Status"], read["Severity"],
            read["Priority"]) == (order, "call the customer", "Payment", case, "New", "High", None)
    plain = sf.ProcessException.get(sf.ProcessException.create({"AttachedToId": order, "Message": "m"})["id"])
    assert (plain["Category"], plain["CaseId"], plain["OrderSummaryId"]) == ("Order Activation", None, None)
    assert sf.ProcessException.update(made, {"CaseId": None}) == 204
    assert sf.ProcessException.get(made)["CaseId"] is None
    [row] = sf.query(f"SELECT Id, CaseId, Priority FROM ProcessException WHERE Id = '{made}'")["records"]
    assert (row["CaseId"], row["Priority"]) == (None, None)

    before = snapshot(engine.store_url)
    with pytest.raises(SalesforceMalformedRequest) as missing:
        sf.ProcessException.create({"AttachedToId": order})
    assert (only_error(missing)["errorCode"], only_error(missing)["fields"]) == ("REQUIRED_FIELD_MISSING", ["Message"])
    with pytest.raises(SalesforceMalformedRequest) as unknown:
        sf.ProcessException.create({"AttachedToId": order, "Message": "m", "Priority": "High"})
    assert only_error(unknown)["fields"] == ["Priority"]
    with pytest.raises(SalesforceResourceNotFound):
        sf.ProcessException.create({"AttachedToId": order, "Message": "m", "OrderSummaryId": "1OsZZZZZZZZZZZZZZZ"})
    with pytest.raises(SalesforceMalformedRequest):
        sf.ProcessException.update(made, {"CaseId": "not an id"})
    assert snapshot(engine.store_url) == before
    fields = {f["name"]: f for f in sf.ProcessException.describe()["fields"]}
    assert fields["CaseId"]["createable"] and fields["CaseId"]["updateable"] and not fields["Priority"]["createable"]
    assert sf.ProcessException.describe()["createable"] is True


def test_a_refund_reads_as_salesforce_s_refund_and_refund_line_payment(sf, engine):
    """After Ensure Refunds, each Processed refund is a RefundLinePayment (Object Reference
    v67): found by PaymentId or RefundId in SOQL and by its Id with GET (18 or 15 characters),
    Type Applied; the refund reads ProcessingMode, PaymentGatewayId and SfResultCode."""
    order, summaries, memo, _invoices = set_up_order(sf, payments=[60.00], credit_memo=25.00)
    operation_id = sf.restful(ACTION.format(order), method="POST", json={"creditMemoId": memo})["backgroundOperationId"]
    assert wait_for_operation(sf, operation_id)["Status"] == "Complete"
    [payment] = sf.query(f"SELECT Id, PaymentGatewayId, TotalRefundApplied FROM Payment "
                         f"WHERE OrderPaymentSummaryId = '{summaries[0]}'")["records"]
    [refund] = sf.query(f"SELECT Id, Amount, Status, SfResultCode, ProcessingMode, PaymentGatewayId FROM Refund "
                        f"WHERE PaymentId = '{payment['Id']}'")["records"]
    assert (refund["Status"], refund["SfResultCode"], refund["ProcessingMode"], refund["PaymentGatewayId"]) == (
        "Processed", "Success", "Salesforce", payment["PaymentGatewayId"])
    lines = sf.query(f"SELECT Id, Amount, RefundId, Type FROM RefundLinePayment WHERE PaymentId = '{payment['Id']}'")
    [line] = lines["records"]
    assert (line["RefundId"], line["Type"], D(str(line["Amount"]))) == (refund["Id"], "Applied", D("25.00"))
    assert D(str(line["Amount"])) == D(str(payment["TotalRefundApplied"]))
    assert line["attributes"]["url"].endswith(f"/RefundLinePayment/{line['Id']}")
    read = sf.RefundLinePayment.get(line["Id"])
    assert (read["Id"], read["PaymentId"], read["HasBeenUnapplied"]) == (line["Id"], payment["Id"], "No")
    assert sf.RefundLinePayment.get(line["Id"][:15])["Id"] == line["Id"]
    [by_refund] = sf.query(f"SELECT Id FROM RefundLinePayment WHERE RefundId = '{refund['Id']}'")["records"]
    assert by_refund["Id"] == line["Id"]
    with pytest.raises(SalesforceResourceNotFound) as not_a_line:
        sf.RefundLinePayment.get(refund["Id"])  # a refund's own Id names no line
    assert only_error(not_a_line)["errorCode"] == "NOT_FOUND"
    assert sf.RefundLinePayment.describe()["keyPrefix"] == line["Id"][:3]
    assert_ledger_invariants(engine.store_url)
