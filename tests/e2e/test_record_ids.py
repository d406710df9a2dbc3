"""15-character Ids, as people copy them from Salesforce's UI and reports, name the same
records as their 18-character form: in sObject paths, in Connect paths and in bodies."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from simple_salesforce.exceptions import SalesforceResourceNotFound

from db.ids import to_18
from tests.e2e.test_ensure_refunds_async import ACTION, set_up_order, wait_for_operation
from tests.ledger import assert_ledger_invariants


def test_a_15_character_id_names_the_record_its_18_character_form_names(sf, engine):
    order, (summary,), memo, _ = set_up_order(sf, payments=[30.00], credit_memo=12.00)
    assert all(len(record_id) == 18 and to_18(record_id[:15]) == record_id for record_id in (order, summary, memo))

    second = sf.OrderPaymentSummary.create({"OrderSummaryId": order[:15], "Method": "Card"})["id"]
    assert sf.OrderPaymentSummary.get(second)["OrderSummaryId"] == order  # a 15-character reference is kept as 18

    read = sf.OrderPaymentSummary.get(summary[:15])
    assert read["Id"] == summary  # answered in the 18-character form, as Salesforce does
    with pytest.raises(SalesforceResourceNotFound):
        sf.OrderPaymentSummary.get(summary[:14] + ("a" if summary[14] != "a" else "b"))  # another record's Id

    found = sf.query(f"SELECT Id FROM OrderPaymentSummary WHERE OrderSummaryId = '{order[:15]}' AND Id IN ('{summary[:15]}')")
    assert [r["Id"] for r in found["records"]] == [summary]

    started = sf.restful(ACTION.format(order[:15]), method="POST", json={"creditMemoId": memo[:15]})
    assert wait_for_operation(sf, started["backgroundOperationId"])["Status"] == "Complete"
    refunded = sf.OrderPaymentSummary.get(summary)
    assert D(str(refunded["RefundedAmount"])) == D("12.00")
    assert_ledger_invariants(engine.store_url)
