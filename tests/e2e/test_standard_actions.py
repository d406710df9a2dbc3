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


def test_versions_and_resource_directories_are_served_and_other_versions_are_not_found(sf, engine, tls):
    import requests

    listed = requests.get(f"{engine.facade_url}/services/data", verify=str(tls[0])).json()
    assert listed[0] == {"label": "v48.0", "url": "/services/data/v48.0", "version": "48.0"}
    assert listed[-1]["version"] == "67.0" and len(listed) == 20
    directory = sf.restful("")
    assert directory["query"] == "/services/data/v60.0/query" and directory["sobjects"] == "/services/data/v60.0/sobjects"
    assert sf.restful("actions") == {"standard": "/services/data/v60.0/actions/standard",
                                     "custom": "/services/data/v60.0/actions/custom"}
    for version in ("47.0", "68.0"):
        answer = requests.get(f"{engine.facade_url}/services/data/v{version}/sobjects", verify=str(tls[0]),
                              headers={"Authorization": f"Bearer {engine.config.token}"})
        assert answer.status_code == 404 and answer.json()[0]["errorCode"] == "NOT_FOUND", answer.text
