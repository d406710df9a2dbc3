"""Fulfil Items, Submit Return, Create Return Order, Return Return Order Items and Create
Invoice from Change Orders, on each backend; then the return-to-refund and
invoice-to-funds flows against the real Prefect server."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
from sqlmodel import select

from actions.change_orders import (
    ChangeItem, CreateCreditMemoInput, CreateInvoiceInput, SubmitCancelInput, SubmitReturnInput,
    create_credit_memo_from_change_orders, create_invoice_from_fee_change_orders, submit_cancel_items, submit_return_items,
)
from actions.fulfillment import FulfillItemsInput, FulfillmentItem, fulfill_and_invoice
from actions.returns import (
    CreateReturnOrderInput, ReturnItemsInput, ReturnOrderFeeInput, ReturnOrderItemFeeInput, ReturnOrderItemInput,
    ReturnOrderLineItemInput, create_return_order_lines, process_return_items,
)
from db.engine import session_scope
from db.models import (
    ChangeOrder, CreditMemo, Invoice, InvoiceLine, OrderItemSummary, OrderPaymentSummary,
    ReturnOrder, ReturnOrderLineItem, ReturnOrderLineType, ReturnOrderStatus,
)
from domain.errors import InvalidInputError, NotFoundError
from tests.factories import make_order_with_items
from tests.ledger import assert_ledger_invariants, snapshot


def _order_with_items(store, *, payments=("100.00",), items=(("mug", "3.33", "3", "1.00"),)):
    return make_order_with_items(store, payments=payments, items=items)


def _fulfil(store, order, *shipped, operation_id=None):
    with session_scope(store) as s:
        invoice = fulfill_and_invoice(session=s, order_summary_id=order.order_summary_id, request=FulfillItemsInput(
            fulfillment_items=[FulfillmentItem(order_item_summary_id=i, quantity=D(q)) for i, q in shipped]),
            operation_id=operation_id)
        return invoice.id, invoice.total_amount


def _item(store, item_id) -> OrderItemSummary:
    with session_scope(store) as s:
        return s.get(OrderItemSummary, item_id)


def _quantities(store, item_id):
    item = _item(store, item_id)
    return (item.quantity_canceled, item.quantity_fulfilled, item.quantity_return_initiated, item.quantity_returned)


def _return_order(store, order, lines, fees=()):
    with session_scope(store) as s:
        return_order, made, fee_lines = create_return_order_lines(session=s, request=CreateReturnOrderInput(
            order_summary_id=order.order_summary_id,
            return_order_line_items=[ReturnOrderLineItemInput(order_item_summary_id=i, quantity_expected=D(q),
                                                              reason_for_return="did not fit") for i, q in lines],
            return_order_fees=[ReturnOrderFeeInput(name=name, amount=D(a), tax_amount=D(t)) for name, a, t in fees]))
        return return_order.id, [line.id for line in made], [fee.id for fee in fee_lines]


def _process(store, return_order_id, items, fees=(), operation_id=None):
    with session_scope(store) as s:
        return process_return_items(session=s, return_order_id=return_order_id, request=ReturnItemsInput(
            return_order_items=items, return_order_item_fees=[ReturnOrderItemFeeInput(return_order_line_item_id=f)
                                                              for f in fees]), operation_id=operation_id)


# --- fulfilment and its invoice ------------------------------------------------------


def test_cancels_and_invoices_together_make_exactly_the_line(store):
    """3 mugs at 3.33 with 1.00 tax: a cancel prices units from the start, invoices from the
    end, so 1 cancelled + 2 invoiced in two pieces add up to 9.99 + 1.00 to the cent."""
    order, (mug,) = _order_with_items(store)
    with session_scope(store) as s:
        cancel = submit_cancel_items(session=s, order_summary_id=order.order_summary_id, request=SubmitCancelInput(
            change_items=[ChangeItem(order_item_summary_id=mug, quantity=D(1))]))
        credited = cancel.total_amount + cancel.total_tax_amount
    first, second = _fulfil(store, order, (mug, "1")), _fulfil(store, order, (mug, "1"))
    assert credited + first[1] + second[1] == D("10.99")
    assert (first[1], second[1]) == (D("3.66"), D("3.67"))  # 3.33 + 0.33, then 3.33 + 0.34 (cumulative rounding)
    with session_scope(store) as s:
        lines = list(s.exec(select(InvoiceLine).where(InvoiceLine.invoice_id == first[0])))
        assert [(line.name, line.charge_amount, line.tax_amount) for line in lines] == [("mug", D("3.33"), D("0.33"))]
        assert s.get(Invoice, first[0]).balance == D("3.66")
    assert _quantities(store, mug) == (D(1), D(2), D(0), D(0))
    assert _item(store, mug).available_to_cancel == 0
    assert_ledger_invariants(store)


@pytest.mark.parametrize("case", ["beyond-ordered", "after-cancel", "foreign-item", "unknown-item", "same-item-twice"])
def test_bad_fulfilments_change_nothing(store, case):
    order, (mug,) = _order_with_items(store)
    other, (foreign,) = _order_with_items(store)
    with session_scope(store) as s:
        submit_cancel_items(session=s, order_summary_id=order.order_summary_id, request=SubmitCancelInput(
            change_items=[ChangeItem(order_item_summary_id=mug, quantity=D(1))]))
    shipped, error = {
        "beyond-ordered": ([(mug, "4")], InvalidInputError),
        "after-cancel": ([(mug, "3")], InvalidInputError),  # 1 of 3 was cancelled
        "foreign-item": ([(foreign, "1")], InvalidInputError),
        "unknown-item": ([("10uAAAAAAAAAAAAAAA", "1")], NotFoundError),
        "same-item-twice": ([(mug, "1"), (mug, "1")], InvalidInputError),
    }[case]
    before = snapshot(store)
    with pytest.raises(error):
        _fulfil(store, order, *shipped)
    assert snapshot(store) == before


# --- Submit Return -------------------------------------------------------------------


def test_returning_every_fulfilled_unit_credits_exactly_what_was_invoiced(store):
    order, (mug, plate) = _order_with_items(store, items=(("mug", "3.33", "3", "1.00"), ("plate", "0.01", "2", "0.01")))
    _, invoiced = _fulfil(store, order, (mug, "2"), (plate, "1"))
    credited = D(0)
    for item, quantity in ((mug, "1"), (plate, "1"), (mug, "1")):
        with session_scope(store) as s:
            change_order = submit_return_items(session=s, order_summary_id=order.order_summary_id, request=SubmitReturnInput(
                change_items=[ChangeItem(order_item_summary_id=item, quantity=D(quantity))]))
            credited += change_order.total_amount + change_order.total_tax_amount
    assert credited == invoiced == D("6.66") + D("0.67") + D("0.01") + D("0.01")
    assert _quantities(store, mug) == (D(0), D(2), D(2), D(2))
    assert _item(store, mug).available_to_return == 0
    assert_ledger_invariants(store)


@pytest.mark.parametrize("case", ["not-fulfilled", "beyond-fulfilled", "foreign-item"])
def test_bad_submit_returns_change_nothing(store, case):
    order, (mug, plate) = _order_with_items(store, items=(("mug", "3.33", "3", "1.00"), ("plate", "2.00", "2", "0")))
    other, (foreign,) = _order_with_items(store)
    _fulfil(store, order, (mug, "2"))
    _fulfil(store, other, (foreign, "1"))
    item, quantity = {"not-fulfilled": (plate, "1"), "beyond-fulfilled": (mug, "3"), "foreign-item": (foreign, "1")}[case]
    before = snapshot(store)
    with pytest.raises(InvalidInputError):
        with session_scope(store) as s:
            submit_return_items(session=s, order_summary_id=order.order_summary_id, request=SubmitReturnInput(
                change_items=[ChangeItem(order_item_summary_id=item, quantity=D(quantity))]))
    assert snapshot(store) == before


# --- return orders -------------------------------------------------------------------


def test_return_order_received_in_part_splits_the_rest_and_charges_the_fee(store):
    """4 shirts expected back with a 5.00 + 0.50 restocking fee: 3 arrive (2 returned, 1
    rejected), 1 is still expected on a split line; the fee becomes a negative Fee change
    order, then an invoice; the returned units a credit memo."""
    order, (shirt,) = _order_with_items(store, items=(("shirt", "20.00", "5", "10.00"),))
    _fulfil(store, order, (shirt, "5"))
    return_order_id, (line,), (fee,) = _return_order(store, order, [(shirt, "4")], fees=[("restocking", "5.00", "0.50")])
    assert _quantities(store, shirt) == (D(0), D(5), D(4), D(0))

    out = _process(store, return_order_id, [ReturnOrderItemInput(
        return_order_line_item_id=line, quantity_received=D(3), quantity_rejected=D(1), reason_for_rejection="stained")],
        fees=[fee])
    assert out.order_summary_id == order.order_summary_id
    assert [(s.original_return_order_item_id, s.quantity_expected) for s in out.return_line_item_splits] == [(line, D(1))]
    # 1 rejected unit goes back to the customer: return-initiated 4 - 1, returned 2
    assert _quantities(store, shirt) == (D(0), D(5), D(3), D(2))
    with session_scope(store) as s:
        returned = s.get(ChangeOrder, out.change_order_id)
        fees = s.get(ChangeOrder, out.fee_change_order_id)
        processed = s.get(ReturnOrderLineItem, line)
        split = s.get(ReturnOrderLineItem, out.return_line_item_splits[0].new_return_order_item_id)
        assert (returned.type, returned.total_amount, returned.total_tax_amount) == ("Return", D("40.00"), D("4.00"))
        assert (fees.type, fees.total_amount, fees.total_tax_amount) == ("Fee", D("-5.00"), D("-0.50"))
        assert (processed.quantity_expected, processed.quantity_received, processed.quantity_returned,
                processed.quantity_rejected, processed.change_order_id) == (D(3), D(3), D(2), D(1), returned.id)
        assert processed.processed_date is not None and split.processed_date is None
        assert (split.quantity_expected, split.split_from_id) == (D(1), line)
        assert s.get(ReturnOrder, return_order_id).status == ReturnOrderStatus.SUBMITTED  # the split is still open

    with session_scope(store) as s:
        invoice = create_invoice_from_fee_change_orders(session=s, order_summary_id=order.order_summary_id,
                                                        request=CreateInvoiceInput(change_order_ids=[out.fee_change_order_id]))
        memo = create_credit_memo_from_change_orders(session=s, order_summary_id=order.order_summary_id,
                                                     request=CreateCreditMemoInput(change_order_ids=[out.change_order_id]))
        assert (invoice.total_amount, invoice.balance, memo.total_amount) == (D("5.50"), D("5.50"), D("44.00"))
    assert_ledger_invariants(store)

    # the last shirt arrives: the split line closes the return order
    last = _process(store, return_order_id, [ReturnOrderItemInput(
        return_order_line_item_id=out.return_line_item_splits[0].new_return_order_item_id, quantity_received=D(1))])
    assert last.fee_change_order_id is None and last.return_line_item_splits == []
    assert _quantities(store, shirt) == (D(0), D(5), D(3), D(3))
    with session_scope(store) as s:
        assert s.get(ReturnOrder, return_order_id).status == ReturnOrderStatus.CLOSED
    assert_ledger_invariants(store)


def test_expected_units_cancelled_become_returnable_again(store):
    order, (shirt,) = _order_with_items(store, items=(("shirt", "20.00", "2", "0"),))
    _fulfil(store, order, (shirt, "2"))
    return_order_id, (line,), _ = _return_order(store, order, [(shirt, "2")])
    out = _process(store, return_order_id, [ReturnOrderItemInput(return_order_line_item_id=line, quantity_to_cancel=D(2))])
    assert out.change_order_id is None and out.return_line_item_splits == []
    assert _quantities(store, shirt) == (D(0), D(2), D(0), D(0))
    assert _item(store, shirt).available_to_return == D(2)
    assert_ledger_invariants(store)


@pytest.mark.parametrize("case", [
    "more-than-expected", "line-of-another-return", "processed-twice", "product-line-as-fee", "fee-line-as-product",
    "unknown-return-order", "same-line-twice",
])
def test_bad_return_items_change_nothing(store, case):
    order, (shirt,) = _order_with_items(store, items=(("shirt", "20.00", "5", "0"),))
    _fulfil(store, order, (shirt, "5"))
    return_order_id, (line,), (fee,) = _return_order(store, order, [(shirt, "2")], fees=[("restocking", "5.00", "0")])
    other_return, (other_line,), _ = _return_order(store, order, [(shirt, "1")])
    _process(store, other_return, [ReturnOrderItemInput(return_order_line_item_id=other_line, quantity_received=D(1))])
    target, items, fees, error = {
        "more-than-expected": (return_order_id, [(line, "2", "1")], [], InvalidInputError),
        "line-of-another-return": (return_order_id, [(other_line, "1", "0")], [], InvalidInputError),
        "processed-twice": (other_return, [(other_line, "1", "0")], [], InvalidInputError),
        "product-line-as-fee": (return_order_id, [(line, "1", "0")], [line], InvalidInputError),
        "fee-line-as-product": (return_order_id, [(fee, "1", "0")], [], InvalidInputError),
        "unknown-return-order": ("0ROAAAAAAAAAAAAAAA", [(line, "1", "0")], [], NotFoundError),
        "same-line-twice": (return_order_id, [(line, "1", "0"), (line, "1", "0")], [], InvalidInputError),
    }[case]
    before = snapshot(store)
    with pytest.raises(error):
        _process(store, target, [ReturnOrderItemInput(return_order_line_item_id=i, quantity_received=D(r),
                                                      quantity_to_cancel=D(c)) for i, r, c in items], fees=fees)
    assert snapshot(store) == before


def test_quantity_returned_drives_a_line_and_received_is_informational():
    """Salesforce: quantityReturned is required, quantityReceived and quantityRejected are
    informational; here received defaults to returned + rejected."""
    only_returned = ReturnOrderItemInput(return_order_line_item_id="0RLAAAAAAAAAAAAAAA", quantity_returned=D(1))
    assert (only_returned.returned, only_returned.received) == (D(1), D(1))
    told_otherwise = ReturnOrderItemInput(return_order_line_item_id="0RLAAAAAAAAAAAAAAA", quantity_received=D(2),
                                          quantity_returned=D(2), quantity_rejected=D(1))
    assert (told_otherwise.returned, told_otherwise.received) == (D(2), D(3))
    from_received = ReturnOrderItemInput(return_order_line_item_id="0RLAAAAAAAAAAAAAAA", quantity_received=D(2),
                                         quantity_rejected=D(1))
    assert (from_received.returned, from_received.received) == (D(1), D(2))
    with pytest.raises(ValueError, match="quantityRejected exceeds"):
        ReturnOrderItemInput(return_order_line_item_id="0RLAAAAAAAAAAAAAAA", quantity_received=D(1), quantity_rejected=D(2))
    with pytest.raises(ValueError, match="at least some"):
        ReturnOrderItemInput(return_order_line_item_id="0RLAAAAAAAAAAAAAAA")


@pytest.mark.parametrize("case", ["not-fulfilled", "beyond-returnable", "fee-finer-than-cents"])
def test_bad_return_orders_change_nothing(store, case):
    order, (shirt,) = _order_with_items(store, items=(("shirt", "20.00", "5", "0"),))
    _fulfil(store, order, (shirt, "2"))
    _return_order(store, order, [(shirt, "1")])
    lines, fees = {
        "not-fulfilled": ([(shirt, "3")], []),
        "beyond-returnable": ([(shirt, "2")], []),  # 2 fulfilled, 1 already on a return order
        "fee-finer-than-cents": ([(shirt, "1")], [("restocking", "1.005", "0")]),
    }[case]
    before = snapshot(store)
    with pytest.raises(InvalidInputError):
        _return_order(store, order, lines, fees)
    assert snapshot(store) == before


def test_return_items_happen_once_per_operation(store):
    order, (shirt,) = _order_with_items(store, items=(("shirt", "20.00", "3", "0"),))
    _fulfil(store, order, (shirt, "3"))
    return_order_id, (line,), (fee,) = _return_order(store, order, [(shirt, "3")], fees=[("label", "4.00", "0")])
    operation = str(uuid.uuid4())
    items = [ReturnOrderItemInput(return_order_line_item_id=line, quantity_received=D(2))]
    first = _process(store, return_order_id, items, fees=[fee], operation_id=operation)
    again = _process(store, return_order_id, items, fees=[fee], operation_id=operation)
    assert first == again
    assert _quantities(store, shirt) == (D(0), D(3), D(3), D(2))
    assert_ledger_invariants(store)


# --- Create Invoice from Change Orders -----------------------------------------------


def test_invoices_come_from_fee_change_orders_only_and_once(store):
    order, (shirt,) = _order_with_items(store, items=(("shirt", "20.00", "2", "0"),))
    _fulfil(store, order, (shirt, "2"))
    return_order_id, (line,), (fee,) = _return_order(store, order, [(shirt, "1")], fees=[("label", "4.00", "0.40")])
    out = _process(store, return_order_id, [ReturnOrderItemInput(return_order_line_item_id=line, quantity_received=D(1))],
                   fees=[fee])

    def invoice(*change_order_ids):
        with session_scope(store) as s:
            return create_invoice_from_fee_change_orders(session=s, order_summary_id=order.order_summary_id,
                                                         request=CreateInvoiceInput(change_order_ids=list(change_order_ids))).id

    before = snapshot(store)
    with pytest.raises(InvalidInputError, match="credit it, do not invoice it"):
        invoice(out.change_order_id)
    with pytest.raises(InvalidInputError, match="invoice it, do not credit it"), session_scope(store) as s:
        create_credit_memo_from_change_orders(session=s, order_summary_id=order.order_summary_id,
                                              request=CreateCreditMemoInput(change_order_ids=[out.fee_change_order_id]))
    assert snapshot(store) == before
    invoice_id = invoice(out.fee_change_order_id)
    with session_scope(store) as s:
        assert s.get(Invoice, invoice_id).total_amount == D("4.40")
    before = snapshot(store)
    with pytest.raises(InvalidInputError, match="used already"):
        invoice(out.fee_change_order_id)
    assert snapshot(store) == before
    assert_ledger_invariants(store)


# --- the composed flows --------------------------------------------------------------


def test_return_to_refund_refunds_the_credit_less_the_fee(store, prefect_api):
    """2 of 3 shirts come back with a 5.00 fee: 40.00 + 4.00 tax credited, the fee paid from
    the credit memo, 39.00 refunded to the card."""
    from flows.run_composition import run_composition

    order, (shirt,) = _order_with_items(store, payments=("66.00",), items=(("shirt", "20.00", "3", "6.00"),))
    _fulfil(store, order, (shirt, "3"))
    return_order_id, (line,), (fee,) = _return_order(store, order, [(shirt, "2")], fees=[("restocking", "5.00", "0")])
    out = run_composition("return-to-refund", {"returnOrderId": return_order_id, "returnItemsInput": {
        "returnOrderItems": [{"returnOrderLineItemId": line, "quantityReceived": 2}],
        "returnOrderItemFees": [{"returnOrderLineItemId": fee}]}})
    assert D(out["refund"]["refundedAmount"]) == D("39.00")
    assert out["refund"]["invoicesPaid"] == [{"invoiceId": out["fee-invoice"]["invoiceId"], "amount": "5.00"}]
    assert out["flag-fee"] == {"processExceptionId": None}  # the fee was paid from the credit
    with session_scope(store) as s:
        assert s.get(CreditMemo, out["memo"]["creditMemoId"]).balance == D("0")
        assert s.get(Invoice, out["fee-invoice"]["invoiceId"]).balance == D("0")
        assert s.get(OrderPaymentSummary, order.summaries[0]).refunded_amount == D("39.00")
    assert _quantities(store, shirt) == (D(0), D(3), D(2), D(2))
    assert_ledger_invariants(store)


def test_invoice_to_funds_invoices_shipped_units_and_pays_them(store, prefect_api):
    from flows.run_composition import run_composition

    order, (mug, plate) = _order_with_items(store, payments=("50.00",), items=(("mug", "10.00", "2", "2.00"),
                                                                               ("plate", "5.00", "4", "0")))
    out = run_composition("invoice-to-funds", {"orderSummaryId": order.order_summary_id, "fulfillItemsInput": {
        "fulfillmentItems": [{"orderItemSummaryId": mug, "quantity": 2}, {"orderItemSummaryId": plate, "quantity": 1}]}})
    assert D(out["invoice"]["totalAmount"]) == D("27.00")
    assert D(out["funds"]["invoiceBalance"]) == D("0") and out["funds"]["captures"] == []
    assert sum(D(a["amount"]) for a in out["funds"]["applications"]) == D("27.00")
    with session_scope(store) as s:
        assert s.get(Invoice, out["invoice"]["invoiceId"]).balance == D("0")
    assert_ledger_invariants(store)


def test_a_fee_line_left_out_can_be_charged_on_its_own_later(store):
    order, (shirt,) = _order_with_items(store, items=(("shirt", "20.00", "1", "0"),))
    _fulfil(store, order, (shirt, "1"))
    return_order_id, (line,), (fee,) = _return_order(store, order, [(shirt, "1")], fees=[("label", "3.00", "0")])
    _process(store, return_order_id, [ReturnOrderItemInput(return_order_line_item_id=line, quantity_received=D(1))])
    out = _process(store, return_order_id, [], fees=[fee])
    assert out.change_order_id is None and out.fee_amount == D("3.00")
    with session_scope(store) as s:
        assert s.get(ReturnOrder, return_order_id).status == ReturnOrderStatus.CLOSED
    with pytest.raises(ValueError, match="at least one"):
        ReturnItemsInput()
    assert_ledger_invariants(store)


def test_free_items_ship_on_an_invoice_of_nothing(store):
    order, (gift, mug) = _order_with_items(store, items=(("gift", "0", "1", "0"), ("mug", "4.00", "1", "0")))
    invoice_id, total = _fulfil(store, order, (gift, "1"))
    assert total == 0
    with session_scope(store) as s:
        assert s.get(Invoice, invoice_id).balance == 0
    assert _quantities(store, gift) == (D(0), D(1), D(0), D(0))
    assert_ledger_invariants(store)


def test_a_return_whose_credit_does_not_cover_the_fee_leaves_it_to_a_person(store, prefect_api):
    """All units rejected, a 5.00 fee charged: nothing to refund, the fee invoice stays open
    with a ProcessException; the run completes."""
    from db.models import ProcessException
    from flows.run_composition import run_composition

    order, (shirt,) = _order_with_items(store, payments=("20.00",), items=(("shirt", "20.00", "1", "0"),))
    _fulfil(store, order, (shirt, "1"))
    return_order_id, (line,), (fee,) = _return_order(store, order, [(shirt, "1")], fees=[("restocking", "5.00", "0")])
    out = run_composition("return-to-refund", {"returnOrderId": return_order_id, "returnItemsInput": {
        "returnOrderItems": [{"returnOrderLineItemId": line, "quantityReceived": 1, "quantityRejected": 1,
                              "reasonForRejection": "worn"}],
        "returnOrderItemFees": [{"returnOrderLineItemId": fee}]}})
    assert out["memo"] is None and out["refund"] is None and D(out["return"]["creditAmount"]) == 0  # Decisions: skipped
    fee_invoice_id = out["fee-invoice"]["invoiceId"]
    with session_scope(store) as s:
        assert s.get(Invoice, fee_invoice_id).balance == D("5.00")
        flagged = list(s.exec(select(ProcessException).where(ProcessException.attached_to_id == fee_invoice_id)))
    assert len(flagged) == 1 and "5.00" in flagged[0].message and out["flag-fee"]["processExceptionId"] == flagged[0].id
    assert _quantities(store, shirt) == (D(0), D(1), D(0), D(0))  # the rejected shirt is the customer's again
    assert_ledger_invariants(store)


def test_invoice_to_funds_with_only_free_items_asks_for_no_funds(store, prefect_api):
    from flows.run_composition import run_composition

    order, (gift,) = _order_with_items(store, payments=("1.00",), items=(("gift", "0", "2", "0"),))
    out = run_composition("invoice-to-funds", {"orderSummaryId": order.order_summary_id, "fulfillItemsInput": {
        "fulfillmentItems": [{"orderItemSummaryId": gift, "quantity": 2}]}})
    assert D(out["invoice"]["totalAmount"]) == 0 and out["funds"] is None
    assert_ledger_invariants(store)


# --- Salesforce's per-line fees (56.0) and fee quantities -----------------------------


@pytest.mark.parametrize(("amount_type", "amount", "fee", "tax"), [
    # 4 shirts at 20.00 (100.00) with 10.00 tax, i.e. 10%; 2 of them expected back
    ("AmountWithoutTax", "5.00", "5.00", "0.50"),     # tax added at the item's rate
    ("AmountWithTax", "5.50", "5.00", "0.50"),        # split at it
    ("Percentage", "10", "4.00", "0.40"),            # 10% of 2/5 of 100.00 and of 10.00
    ("PercentageGross", "10", "4.00", "0.40"),       # 10% of 2/5 of 110.00, split
    ("AmountWithTax", "1.01", "0.92", "0.09"),       # 1.01 / 1.1 = 0.918..: tax rounds, the parts add up
])
def test_a_line_s_fee_is_priced_by_its_amount_type_at_the_item_s_tax_rate(store, amount_type, amount, fee, tax):
    order, (shirt,) = _order_with_items(store, items=(("shirt", "20.00", "5", "10.00"),))
    _fulfil(store, order, (shirt, "5"))
    with session_scope(store) as s:
        _, (line,), (fee_line,) = create_return_order_lines(session=s, request=CreateReturnOrderInput.model_validate({
            "orderSummaryId": order.order_summary_id, "status": "Submitted", "returnOrderLifeCycleType": "Managed",
            "returnOrderLineItems": [{"orderItemSummaryId": shirt, "quantityExpected": 2, "canReduceShipping": False,
                                      "reasonForReturn": "Wrong Item", "returnOrderLineItemFees": [{
                                          "amount": D(amount), "amountType": amount_type, "description": "Restocking",
                                          "product2Id": "01txx0000006i2CAAQ", "reason": "Restocking"}]}]}))
        assert (fee_line.type, fee_line.name, fee_line.quantity_expected) == (ReturnOrderLineType.FEE, "Restocking", D(2))
        assert (fee_line.fee_amount, fee_line.fee_tax_amount) == (D(fee), D(tax))
    assert_ledger_invariants(store)


def test_a_fee_is_charged_for_the_units_returned_and_the_rest_stays_expected(store):
    """Salesforce's example: a 10.00 fee on 2 units, 1 returned, charges 5.00. Here 3 units
    with a 10.00 + 1.00 fee: 1 returned charges 3.33 + 0.33, 1 cancelled is never charged,
    1 stays expected on a split fee line; returning it later charges its third."""
    order, (shirt,) = _order_with_items(store, items=(("shirt", "20.00", "5", "10.00"),))
    _fulfil(store, order, (shirt, "5"))
    return_order_id, (line,), (fee,) = _return_order(store, order, [(shirt, "3")], fees=[("restocking", "10.00", "1.00")])
    with session_scope(store) as s:  # fees made with returnOrderFees expect 1 unit; this one expects the line's 3
        s.get(ReturnOrderLineItem, fee).quantity_expected = D(3)
    before = snapshot(store)
    with pytest.raises(InvalidInputError, match="at most the 3 expected"):
        with session_scope(store) as s:
            process_return_items(session=s, return_order_id=return_order_id, request=ReturnItemsInput.model_validate(
                {"returnOrderItemFees": [{"returnOrderLineItemId": fee, "quantityReturned": 3, "quantityToCancel": 1}]}))
    assert snapshot(store) == before

    with session_scope(store) as s:
        out = process_return_items(session=s, return_order_id=return_order_id, request=ReturnItemsInput.model_validate({
            "returnOrderItems": [{"returnOrderLineItemId": line, "quantityReturned": 1, "quantityToCancel": 1}],
            "returnOrderItemFees": [{"returnOrderLineItemId": fee, "quantityReturned": 1, "quantityToCancel": 1}]}))
        charged = s.get(ChangeOrder, out.fee_change_order_id)
        assert (charged.total_amount, charged.total_tax_amount) == (D("-3.33"), D("-0.33"))
        fee_split = [x for x in out.return_line_item_splits if x.original_return_order_item_id == fee]
        assert [x.quantity_expected for x in fee_split] == [D(1)]
        left = s.get(ReturnOrderLineItem, fee_split[0].new_return_order_item_id)
        processed = s.get(ReturnOrderLineItem, fee)
        assert (left.type, left.fee_amount, left.fee_tax_amount) == (ReturnOrderLineType.FEE, D("3.33"), D("0.33"))
        assert (processed.quantity_expected, processed.quantity_returned, processed.quantity_canceled,
                processed.fee_amount) == (D(2), D(1), D(1), D("3.33"))
    assert_ledger_invariants(store)

    last = _process(store, return_order_id, [], fees=[left.id])  # quantityReturned omitted: all still expected
    with session_scope(store) as s:
        rest = s.get(ChangeOrder, last.fee_change_order_id)
        assert (rest.total_amount, rest.total_tax_amount, last.return_line_item_splits) == (D("-3.33"), D("-0.33"), [])
    assert_ledger_invariants(store)


def test_a_fee_charged_in_parts_without_cancelling_adds_up_to_the_cent(store):
    order, (shirt,) = _order_with_items(store, items=(("shirt", "20.00", "5", "0"),))
    _fulfil(store, order, (shirt, "5"))
    return_order_id, _, (fee,) = _return_order(store, order, [(shirt, "3")], fees=[("restocking", "0.01", "0")])
    with session_scope(store) as s:
        s.get(ReturnOrderLineItem, fee).quantity_expected = D(3)
    charged = []
    for _ in range(3):
        with session_scope(store) as s:
            out = process_return_items(session=s, return_order_id=return_order_id, request=ReturnItemsInput.model_validate(
                {"returnOrderItemFees": [{"returnOrderLineItemId": fee, "quantityReturned": 1}]}))
            made = out.fee_change_order_id and s.get(ChangeOrder, out.fee_change_order_id)
            charged.append(-made.total_amount if made else D(0))
            fee = out.return_line_item_splits[0].new_return_order_item_id if out.return_line_item_splits else None
    assert sum(charged) == D("0.01") and sorted(charged) == [D(0), D(0), D("0.01")] and fee is None
    assert_ledger_invariants(store)


@pytest.mark.parametrize("body", [
    {"amount": 5, "amountType": "ProductOnly", "description": "x"},       # 65.0, not supported
    {"amount": 0, "amountType": "AmountWithTax", "description": "x"},
    {"amount": 5, "amountType": "AmountWithTax"},                          # no description
    {"amount": "5.001", "amountType": "AmountWithTax", "description": "x"},  # finer than cents
])
def test_a_bad_line_fee_changes_nothing(store, body):
    order, (shirt,) = _order_with_items(store, items=(("shirt", "20.00", "5", "10.00"),))
    _fulfil(store, order, (shirt, "5"))
    before = snapshot(store)
    with pytest.raises((InvalidInputError, ValueError)):
        with session_scope(store) as s:
            create_return_order_lines(session=s, request=CreateReturnOrderInput.model_validate({
                "orderSummaryId": order.order_summary_id, "returnOrderLineItems": [
                    {"orderItemSummaryId": shirt, "quantityExpected": 1, "returnOrderLineItemFees": [body]}]}))
    assert snapshot(store) == before
