"""Read-only SOQL on ``/query`` (issue 14), through an unmodified simple-salesforce client:
Salesforce's query result shape, paging past 2,000 records with ``nextRecordsUrl``
(``query_more``, ``query_all``), and MALFORMED_QUERY for what is not read here."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from db.engine import session_scope
from db.ids import new_id
from db.models import OrderPaymentSummary
from tests.e2e.test_ensure_refunds_async import set_up_order
from tests.ledger import snapshot

pytestmark = pytest.mark.e2e


def test_a_query_pages_past_2000_records_in_salesforces_shape(sf, engine):
    order, (first,), _memo, _ = set_up_order(sf, payments=[12.34])
    with session_scope(engine.store_url) as session:  # 2,100 more summaries, straight into the store
        session.add_all([OrderPaymentSummary(id=new_id("OrderPaymentSummary"), order_summary_id=order,
                                             currency_iso_code="USD") for _ in range(2_100)])
    soql = f"SELECT Id, CapturedAmount, RefundedAmount, AvailableToRefundAmount FROM OrderPaymentSummary WHERE OrderSummaryId = '{order}'"
    page = sf.query(soql)
    assert (page["totalSize"], page["done"], len(page["records"])) == (2_101, False, 2_000)
    assert page["nextRecordsUrl"].startswith("/services/data/v60.0/query/")
    record = page["records"][0]
    assert set(record) == {"attributes", "Id", "CapturedAmount", "RefundedAmount", "AvailableToRefundAmount"}
    assert record["attributes"] == {"type": "OrderPaymentSummary",
                                    "url": f"/services/data/v60.0/sobjects/OrderPaymentSummary/{record['Id']}"}
    rest = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
    assert (rest["totalSize"], rest["done"], len(rest["records"])) == (2_101, True, 101)
    everything = sf.query_all(soql)["records"]
    assert len({r["Id"] for r in everything}) == 2_101
    [paid] = [r for r in everything if r["Id"] == first]
    assert D(str(paid["CapturedAmount"])) == D("12.34") and D(str(paid["AvailableToRefundAmount"])) == D("12.34")

    ordered = sf.query(f"select Id from OrderPaymentSummary where OrderSummaryId = '{order}' and "
                       f"(Id = '{first}' or Id in ('0aPAAAAAAAAAAAAAAA')) order by Id desc limit 5")
    assert [r["Id"] for r in ordered["records"]] == [first] and ordered["done"] is True


@pytest.mark.parametrize(("soql", "words"), [
    ("SELECT Id FROM OrderPaymentSummary WHERE Method = 'Card'", "not indexed"),
    ("SELECT Id FROM Opportunity", "not supported"),
    ("SELECT Id, Nope FROM OrderPaymentSummary", "No such column 'Nope'"),
    ("DELETE FROM OrderPaymentSummary", "unexpected input"),
    ("SELECT Id FROM Refund WHERE Id = 'x'; DROP TABLE refund", "unexpected input"),
    ("SELECT Id FROM Refund WHERE AvailableToRefundAmount > 1", "No such column"),
])
def test_what_is_not_read_here_is_a_malformed_query_and_changes_nothing(sf, engine, soql, words):
    before = snapshot(engine.store_url)
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.query(soql)
    [error] = refused.value.content
    assert set(error) == {"message", "errorCode", "fields"}
    assert error["errorCode"] == "MALFORMED_QUERY" and words in error["message"], error
    assert snapshot(engine.store_url) == before
