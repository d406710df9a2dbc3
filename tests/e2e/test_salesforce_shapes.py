"""Salesforce's own request bodies, as its Connect REST reference documents them, sent by an
unmodified simple-salesforce client (issue 14): Ensure Refunds Async Input with
``invoicesToPay`` as Invoice To Pay Input objects (56.0), a sequence without an amount,
``isReservedBalanceAmountConsidered`` (59.0); Change Item Input with the required
``shippingReductionFlag``; the Change Item Output answered in full; and a property newer
than the API version in the path refused, changing nothing."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError

from tests.e2e.conftest import count_requested_runs
from tests.e2e.test_ensure_refunds_async import ACTION, set_up_order, wait_for_operation
from tests.e2e.test_order_lifecycle import ORDERS, RETURNS, new_order, quantities
from tests.ledger import assert_ledger_invariants, snapshot

pytestmark = pytest.mark.e2e


def at_version(sf: Salesforce, version: str) -> Salesforce:
    return Salesforce(instance_url=sf.base_url.split("/services/")[0], session_id=sf.session_id, version=version,
                      session=sf.session)


def money(record, field) -> D:
    return D(str(record[field]))


def test_ensure_refunds_takes_salesforces_invoices_to_pay_objects(sf, engine):
    """Connect's own JSON example: {"creditMemoId", "invoicesToPay": [{"invoiceId"}]}, with the
    59.0 flag; the fee is paid from the memo and the rest refunded."""
    order, (large, small), memo, (fee,) = set_up_order(sf, payments=[60.00, 40.00], credit_memo=30.00, invoices=[5.00])
    answer = sf.restful(ACTION.format(order), method="POST", json={
        "creditMemoId": memo, "invoicesToPay": [{"invoiceId": fee}], "isReservedBalanceAmountConsidered": False})
    assert wait_for_operation(sf, answer["backgroundOperationId"])["Status"] == "Complete"
    assert money(sf.Invoice.get(fee), "Balance") == 0
    assert money(sf.CreditMemo.get(memo), "Balance") == 0
    assert money(sf.OrderPaymentSummary.get(large), "RefundedAmount") == D("25.00")  # seed 000: the largest
    assert_ledger_invariants(engine.store_url)


def test_a_sequence_without_an_amount_takes_what_its_summary_can(sf, engine):
    """Salesforce makes sequences[].amount optional: the named summary refunds as much as it
    can of what is left (here all 30.00 to the 40.00 card, where seed 000 alone picks the 60.00)."""
    order, (large, small), memo, _ = set_up_order(sf, payments=[60.00, 40.00], credit_memo=30.00)
    answer = sf.restful(ACTION.format(order), method="POST", json={
        "creditMemoId": memo, "sequences": [{"orderPaymentSummaryId": small}]})
    assert wait_for_operation(sf, answer["backgroundOperationId"])["Status"] == "Complete"
    assert money(sf.OrderPaymentSummary.get(small), "RefundedAmount") == D("30.00")
    assert money(sf.OrderPaymentSummary.get(large), "RefundedAmount") == 0
    assert_ledger_invariants(engine.store_url)


@pytest.mark.parametrize(("version", "body", "newer"), [
    ("55.0", {"invoicesToPay": [], "excessFundsAmount": 1}, "invoicesToPay (56.0)"),
    ("58.0", {"excessFundsAmount": 1, "isReservedBalanceAmountConsidered": False}, "isReservedBalanceAmountConsidered (59.0)"),
    ("48.0", {"excessFundsAmount": 1}, "excessFundsAmount (49.0)"),
])
def test_a_property_newer_than_the_api_version_is_refused(sf, engine, version, body, newer):
    order, *_ = set_up_order(sf, payments=[60.00])
    before, runs_before = snapshot(engine.store_url), count_requested_runs()
    with pytest.raises(SalesforceError) as refused:
        at_version(sf, version).restful(ACTION.format(order), method="POST", json=body)
    assert refused.value.status == 400 and newer in refused.value.content[0]["message"]
    assert snapshot(engine.store_url) == before and count_requested_runs() == runs_before


def test_submit_cancel_takes_salesforces_change_item_input_and_answers_every_balance(sf, engine):
    order, shirt, mug, *_ = new_order(sf, captured=99, authorized=1)
    answer = sf.restful(ORDERS.format(order) + "actions/submit-cancel", method="POST", json={"changeItems": [
        {"orderItemSummaryId": mug, "quantity": 1, "reason": "Unknown", "shippingReductionFlag": False,
         "reasonForChangeText": "customer changed their mind", "changeItemFees": []}]})
    balances = answer["changeBalances"]
    assert set(balances) == {
        "grandTotalAmount", "totalAmount", "totalTaxAmount", "totalAdjustedProductAmount", "totalAdjustedProductTaxAmount",
        "totalAdjProductAmtWithTax", "totalAdjustedDeliveryAmount", "totalAdjustedDeliveryTaxAmount",
        "totalAdjDeliveryAmtWithTax", "totalAdjustmentDistributedAmount", "totalAdjustmentDistributedTaxAmount",
        "totalAdjDistAmountWithTax", "totalExcessFundsAmount", "totalRefundableAmount"}
    assert answer["feeChangeOrderId"] is None
    assert (money(balances, "totalAdjustedProductAmount"), money(balances, "totalAdjustedProductTaxAmount"),
            money(balances, "grandTotalAmount")) == (D("15.00"), D("1.50"), D("16.50"))
    assert money(balances, "totalExcessFundsAmount") == D("16.50")  # captured before the cancel
    assert money(balances, "totalRefundableAmount") == D("99.00")  # nothing refunded yet
    assert money(balances, "totalAdjustedDeliveryAmount") == 0
    assert quantities(sf, mug)[1] == 1
    assert_ledger_invariants(engine.store_url)


@pytest.mark.parametrize(("version", "item", "words"), [
    ("58.0", {"reasonForChangeText": "too late"}, "changeItems[0].reasonForChangeText (59.0)"),
    ("60.0", {"changeItemFees": [{"amount": 1}]}, "change item fees are not supported"),
])
def test_change_items_salesforce_has_but_this_engine_cannot_do_are_refused(sf, engine, version, item, words):
    order, _shirt, mug, *_ = new_order(sf, captured=99, authorized=1)
    before = snapshot(engine.store_url)
    with pytest.raises(SalesforceError) as refused:
        at_version(sf, version).restful(ORDERS.format(order) + "actions/submit-cancel", method="POST", json={
            "changeItems": [{"orderItemSummaryId": mug, "quantity": 1, "shippingReductionFlag": False, **item}]})
    assert refused.value.status == 400 and words in refused.value.content[0]["message"]
    assert snapshot(engine.store_url) == before


def test_a_return_opened_and_processed_with_salesforces_bodies(sf, engine):
    """Return Order Input with its required status, life cycle type and canReduceShipping;
    Return Items with only quantityReturned (Salesforce's required driver), an empty
    returnOrderItemDeliveryCharges; the split answered with Salesforce's keys."""
    order, shirt, _mug, paid, *_ = new_order(sf, captured=99, authorized=1)
    sf.restful(ORDERS.format(order) + "actions/fulfill-items", method="POST",
               json={"fulfillmentItems": [{"orderItemSummaryId": shirt, "quantity": 3}]})
    opened = sf.restful(RETURNS, method="POST", json={
        "orderSummaryId": order, "status": "Submitted", "returnOrderLifeCycleType": "Managed",
        "returnOrderLineItems": [{"orderItemSummaryId": shirt, "quantityExpected": 3, "quantityReceived": 0,
                                  "reasonForReturn": "Wrong Item", "canReduceShipping": False}]})
    [line] = opened["returnOrderLineItemIds"]
    processed = sf.restful(f"{RETURNS}/{opened['returnOrderId']}/actions/return-items", method="POST", json={
        "returnOrderItems": [{"returnOrderLineItemId": line, "quantityReturned": 2}],
        "returnOrderItemDeliveryCharges": []})
    [split] = processed["returnLineItemSplits"]
    assert split["originalReturnOrderItemId"] == line and split["newReturnOrderItemId"] != line
    assert money(split, "quantityExpected") == 1
    assert processed["changeOrderId"] and money(processed, "creditAmount") == D("44.00")  # 2 x (20.00 + 2.00 tax)
    assert quantities(sf, shirt) == (3, 0, 3, 3, 2)  # all three initiated, two returned, one expected on the split
    assert_ledger_invariants(engine.store_url)


@pytest.mark.parametrize(("path", "body", "words"), [
    ("open", {"returnOrderLifeCycleType": "Unmanaged"}, "returnOrderLifeCycleType"),
    ("open", {"status": "Draft"}, "status"),
    ("process", {"returnOrderItemDeliveryCharges": [{"returnOrderLineItemId": "0RL000000000000001"}]},
     "no delivery charges"),
])
def test_return_shapes_this_engine_does_not_handle_are_refused_clearly(sf, engine, path, body, words):
    order, shirt, *_ = new_order(sf, captured=99, authorized=1)
    sf.restful(ORDERS.format(order) + "actions/fulfill-items", method="POST",
               json={"fulfillmentItems": [{"orderItemSummaryId": shirt, "quantity": 1}]})
    lines = [{"orderItemSummaryId": shirt, "quantityExpected": 1}]
    opened = None if path == "open" else sf.restful(RETURNS, method="POST",
                                                    json={"orderSummaryId": order, "returnOrderLineItems": lines})
    before = snapshot(engine.store_url)
    with pytest.raises(SalesforceError) as refused:
        if path == "open":
            sf.restful(RETURNS, method="POST", json={"orderSummaryId": order, "returnOrderLineItems": lines, **body})
        else:
            sf.restful(f"{RETURNS}/{opened['returnOrderId']}/actions/return-items", method="POST", json={
                "returnOrderItems": [{"returnOrderLineItemId": opened["returnOrderLineItemIds"][0], "quantityReturned": 1}],
                **body})
    assert refused.value.status == 400 and words in refused.value.content[0]["message"]
    assert snapshot(engine.store_url) == before


FUNDS = ORDERS + "async-actions/ensure-funds-async"


def test_ensure_funds_without_partial_pays_the_invoice_from_one_source(sf, engine):
    """Ensure Funds Async Input at 60.0 with isAllowPartial false (and the 59.0 flag): the
    44.00 invoice is not split over the 40.00 captured and the authorization, as the partial
    plan would; the authorization alone, which covers it, is captured for all of it."""
    order, shirt, _mug, paid, held, authorization = new_order(sf, captured=40, authorized=59)
    invoice = sf.restful(ORDERS.format(order) + "actions/fulfill-items", method="POST",
                         json={"fulfillmentItems": [{"orderItemSummaryId": shirt, "quantity": 2}]})["invoiceId"]
    answer = sf.restful(FUNDS.format(order), method="POST", json={
        "invoiceId": invoice, "isAllowPartial": False, "isConsiderReservedBalanceAmount": False, "sequences": ""})
    assert wait_for_operation(sf, answer["backgroundOperationId"])["Status"] == "Complete"
    assert money(sf.Invoice.get(invoice), "Balance") == 0
    assert money(sf.PaymentAuthorization.get(authorization), "CapturedAmount") == D("44.00")
    assert money(sf.OrderPaymentSummary.get(held), "CapturedAmount") == D("44.00")
    assert money(sf.OrderPaymentSummary.get(paid), "CapturedAmount") == D("40.00")  # its balance not applied
    assert_ledger_invariants(engine.store_url)


def test_ensure_funds_without_partial_is_refused_when_it_would_take_two_payments(sf, engine):
    """99.00 owed, 40.00 captured and 59.00 authorized: together they cover it, but neither
    alone does, so isAllowPartial false is refused up front, starting nothing and writing nothing."""
    order, shirt, mug, *_ = new_order(sf, captured=40, authorized=59)
    invoice = sf.restful(ORDERS.format(order) + "actions/fulfill-items", method="POST", json={"fulfillmentItems": [
        {"orderItemSummaryId": shirt, "quantity": 3}, {"orderItemSummaryId": mug, "quantity": 2}]})["invoiceId"]
    before, runs_before = snapshot(engine.store_url), count_requested_runs()
    with pytest.raises(SalesforceError) as refused:
        sf.restful(FUNDS.format(order), method="POST", json={"invoiceId": invoice, "isAllowPartial": False})
    [error] = refused.value.content
    assert refused.value.status == 400 and error["errorCode"] == "INSUFFICIENT_FUNDS"
    assert "isAllowPartial is false" in error["message"] and "99.00" in error["message"]
    assert error["output"] == {"backgroundOperationId": None}
    assert snapshot(engine.store_url) == before and count_requested_runs() == runs_before
    assert money(sf.Invoice.get(invoice), "Balance") == D("99.00")
    assert_ledger_invariants(engine.store_url)


@pytest.mark.parametrize(("version", "body", "words"), [
    ("59.0", {"isAllowPartial": False}, "isAllowPartial (60.0)"),
    ("59.0", {"sequences": ""}, "sequences (60.0)"),
    ("58.0", {"isConsiderReservedBalanceAmount": True}, "isConsiderReservedBalanceAmount (59.0)"),
    ("60.0", {"isAllowPartial": True, "sequences": "0aP000000000000AAA"}, "payment sequencing is not supported"),
])
def test_ensure_funds_properties_newer_than_the_path_or_unsupported_are_refused(sf, engine, version, body, words):
    order, shirt, *_ = new_order(sf, captured=99, authorized=1)
    invoice = sf.restful(ORDERS.format(order) + "actions/fulfill-items", method="POST",
                         json={"fulfillmentItems": [{"orderItemSummaryId": shirt, "quantity": 1}]})["invoiceId"]
    before, runs_before = snapshot(engine.store_url), count_requested_runs()
    with pytest.raises(SalesforceError) as refused:
        at_version(sf, version).restful(FUNDS.format(order), method="POST", json={"invoiceId": invoice, **body})
    assert refused.value.status == 400 and words in refused.value.content[0]["message"]
    assert snapshot(engine.store_url) == before and count_requested_runs() == runs_before
    assert_ledger_invariants(engine.store_url)


MULTIPLE_INVOICES = "commerce/order-management/order-summaries/actions/create-multiple-change-invoices"


def fee_change_order(sf, fee) -> tuple[str, str]:
    """An order whose shirt was returned with a return fee: (order, its Fee change order)."""
    order, shirt, *_ = new_order(sf, captured=99, authorized=1)
    sf.restful(ORDERS.format(order) + "actions/fulfill-items", method="POST",
               json={"fulfillmentItems": [{"orderItemSummaryId": shirt, "quantity": 1}]})
    opened = sf.restful(RETURNS, method="POST", json={
        "orderSummaryId": order, "returnOrderLineItems": [{"orderItemSummaryId": shirt, "quantityExpected": 1}],
        "returnOrderFees": [{"name": "return shipping", "amount": fee}]})
    line, fee_line = opened["returnOrderLineItemIds"][0], opened["feeLineItemIds"][0]
    processed = sf.restful(f"{RETURNS}/{opened['returnOrderId']}/actions/return-items", method="POST", json={
        "returnOrderItems": [{"returnOrderLineItemId": line, "quantityReturned": 1}],
        "returnOrderItemFees": [{"returnOrderLineItemId": fee_line}]})
    return order, processed["feeChangeOrderId"]


def test_create_multiple_change_invoices_makes_one_invoice_per_entry_across_orders(sf, engine):
    """Salesforce's path (no order summary in it) and body, two order summaries in one request:
    {"invoices": [{"invoiceId"}]} in the entries' order, each invoice its order's fee."""
    first, first_fee = fee_change_order(sf, 5)
    second, second_fee = fee_change_order(sf, 7.5)
    answer = sf.restful(MULTIPLE_INVOICES, method="POST", json={"invoicesFromChangeOrders": [
        {"orderSummaryId": first, "changeOrderIds": [first_fee]},
        {"changeOrderIds": [second_fee], "orderSummaryId": second}]})
    made = [sf.Invoice.get(entry["invoiceId"]) for entry in answer["invoices"]]
    assert [(money(i, "TotalAmount"), money(i, "Balance")) for i in made] == [(D("5.00"), D("5.00")), (D("7.50"), D("7.50"))]
    assert [i.get("ReferenceEntityId", i.get("OrderSummaryId")) for i in made] == [first, second]
    assert money(answer["invoices"][1], "totalAmount") == D("7.50")  # our extension
    with pytest.raises(SalesforceError) as again:  # each change order is invoiced once
        sf.restful(MULTIPLE_INVOICES, method="POST", json={"invoicesFromChangeOrders": [
            {"orderSummaryId": first, "changeOrderIds": [first_fee]}]})
    assert again.value.status == 400 and "used already" in again.value.content[0]["message"]
    assert_ledger_invariants(engine.store_url)


@pytest.mark.parametrize("problem", ["foreign change order", "same change order twice", "unknown order summary"])
def test_create_multiple_change_invoices_refuses_a_bad_entry_and_makes_none(sf, engine, problem):
    first, first_fee = fee_change_order(sf, 5)
    second, second_fee = fee_change_order(sf, 6)
    bad = {"foreign change order": {"orderSummaryId": second, "changeOrderIds": [first_fee]},
           "same change order twice": {"orderSummaryId": first, "changeOrderIds": [first_fee]},
           "unknown order summary": {"orderSummaryId": "1Os000000000000ZZZ", "changeOrderIds": [second_fee]}}[problem]
    before = snapshot(engine.store_url)
    with pytest.raises(SalesforceError) as refused:
        sf.restful(MULTIPLE_INVOICES, method="POST", json={"invoicesFromChangeOrders": [
            {"orderSummaryId": first, "changeOrderIds": [first_fee]}, bad]})
    assert refused.value.status in (400, 404) and refused.value.content[0]["errorCode"]
    assert snapshot(engine.store_url) == before  # not even the good entry's invoice
    assert_ledger_invariants(engine.store_url)


def test_create_multiple_change_invoices_is_not_a_resource_before_56(sf, engine):
    order, fee = fee_change_order(sf, 5)
    before = snapshot(engine.store_url)
    with pytest.raises(SalesforceError) as refused:
        at_version(sf, "55.0").restful(MULTIPLE_INVOICES, method="POST", json={
            "invoicesFromChangeOrders": [{"orderSummaryId": order, "changeOrderIds": [fee]}]})
    assert refused.value.status == 404 and refused.value.content[0]["errorCode"] == "NOT_FOUND"
    assert "56.0" in refused.value.content[0]["message"]
    assert snapshot(engine.store_url) == before
