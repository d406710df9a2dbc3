"""``/actions/standard``: the Order Management actions described as Salesforce's
invocable-action describe does, from the same typed models the Prefect tasks use, read by an
unmodified simple-salesforce client (issue 14)."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceResourceNotFound

from actions.ensure_refunds import EnsureRefundsInput
from compositions.actions import ACTIONS

pytestmark = pytest.mark.e2e


def test_the_actions_are_listed_and_each_is_described_from_its_model(sf, engine):
    listed = sf.restful("actions/standard")["actions"]
    assert [a["name"] for a in listed] == [
        "submitCancel", "submitReturn", "createCreditMemo", "createInvoiceFromChangeOrders", "createReturnOrder",
        "returnReturnOrderItems", "fulfilItems", "ensureRefundsAsync", "ensureFundsAsync", "flagOpenBalance"]
    assert len(listed) == len(ACTIONS)

    described = sf.restful("actions/standard/ensureRefundsAsync")
    assert (described["name"], described["label"], described["standard"]) == ("ensureRefundsAsync", "Ensure Refunds Async", True)
    inputs = {i["name"]: i for i in described["inputs"]}
    # one source of truth: the describe's inputs are the record id and the model's fields, by alias
    assert list(inputs) == ["orderSummaryId", *(f.alias for f in EnsureRefundsInput.model_fields.values())]
    assert (inputs["orderSummaryId"]["type"], inputs["orderSummaryId"]["required"]) == ("ID", True)
    assert (inputs["invoicesToPay"]["type"], inputs["invoicesToPay"]["apexClass"], inputs["invoicesToPay"]["maxOccurs"]) == (
        "APEX", "InvoiceToPayInput", 1000)
    assert (inputs["excessFundsAmount"]["type"], inputs["excessFundsAmount"]["required"]) == ("DOUBLE", False)
    assert [p["value"] for p in inputs["strategy"]["picklistValues"]] == ["ExactMatchElseLargest", "FewestPayments"]
    assert [o["name"] for o in described["outputs"]] == ["backgroundOperationId"]

    cancel = sf.restful("actions/standard/submitCancel")
    assert [o["name"] for o in cancel["outputs"]] == ["changeOrderId", "totalAmount", "totalTaxAmount", "excessFundsAmount"]
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful("actions/standard/refundEverything")
