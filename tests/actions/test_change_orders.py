"""Submit Cancel, Create Credit Memo and the cancel-to-refund flow, on each backend."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest

from actions.change_orders import (
    ChangeItem, CreateCreditMemoInput, SubmitCancelInput, create_credit_memo_from_change_orders, submit_cancel_items,
)
from db.engine import session_scope
from db.models import ChangeOrder, CreditMemo, CreditMemoLine, OrderItemSummary, OrderPaymentSummary
from domain.errors import InvalidInputError, NotFoundError
from tests.factories import make_order_with_items
from tests.ledger import assert_ledger_invariants, snapshot


def _order_with_items(store, *, payments=("40.00",), items=(("mug", "9.99", "3", "3.00"),)):
    return make_order_with_items(store, payments=payments, items=items)


def _cancel(store, order, item_id, quantity):
    with session_scope(store) as s:
        change_order = submit_cancel_items(session=s, order_summary_id=order.order_summary_id, request=SubmitCancelInput(
            change_items=[ChangeItem(order_item_summary_id=item_id, quantity=D(quantity), reason="customer asked")]))
        return change_order.id, change_order.total_amount, change_order.total_tax_amount


def test_cancels_in_pieces_add_up_to_the_line_to_the_cent(store):
    order, (item,) = _order_with_items(store, items=(("mug", "3.33", "3", "1.00"),))
    pieces = [_cancel(store, order, item, "1") for _ in range(3)]
    assert [p[1] for p in pieces] == [D("3.33")] * 3
    assert [p[2] for p in pieces] == [D("0.33"), D("0.34"), D("0.33")]  # cumulative rounding, sums to 1.00
    with session_scope(store) as s:
        line = s.get(OrderItemSummary, item)
    assert line.quantity_canceled == D(3) and line.available_to_cancel == 0
    assert_ledger_invariants(store)


@pytest.mark.parametrize("case", ["too-many", "foreign-item", "unknown-item", "same-item-twice", "zero"])
def test_bad_cancels_change_nothing(store, case):
    order, (item,) = _order_with_items(store)
    other, (other_item,) = _order_with_items(store)
    items, error = {
        "too-many": ([ChangeItem(order_item_summary_id=item, quantity=D("3.5"))], InvalidInputError),
        "foreign-item": ([ChangeItem(order_item_summary_id=other_item, quantity=D(1))], InvalidInputError),
        "unknown-item": ([ChangeItem(order_item_summary_id="10uAAAAAAAAAAAAAAA", quantity=D(1))], NotFoundError),
        "same-item-twice": ([ChangeItem(order_item_summary_id=item, quantity=D(1))] * 2, InvalidInputError),
        "zero": (None, Exception),
    }[case]
    before = snapshot(store)
    with pytest.raises(error):
        with session_scope(store) as s:
            request = SubmitCancelInput(change_items=items or [ChangeItem(order_item_summary_id=item, quantity=D(0))])
            submit_cancel_items(session=s, order_summary_id=order.order_summary_id, request=request)
    assert snapshot(store) == before


def test_credit_memo_from_change_orders_and_no_reuse(store):
    order, (mug, plate) = _order_with_items(store, items=(("mug", "9.99", "3", "3.00"), ("plate", "5.00", "2", "0.80")))
    first = _cancel(store, order, mug, "1")
    second = _cancel(store, order, plate, "2")
    with session_scope(store) as s:
        memo = create_credit_memo_from_change_orders(session=s, order_summary_id=order.order_summary_id,
                                                     request=CreateCreditMemoInput(change_order_ids=[first[0], second[0]]))
        memo_id = memo.id
    with session_scope(store) as s:
        memo = s.get(CreditMemo, memo_id)
        lines = sorted((line.name, line.charge_amount, line.tax_amount)
                       for line in s.exec(CreditMemoLine.__table__.select().where(CreditMemoLine.credit_memo_id == memo_id)))
        used = {s.get(ChangeOrder, c).credit_memo_id for c in (first[0], second[0])}
    assert memo.total_amount == memo.balance == D("9.99") + D("1.00") + D("10.00") + D("0.80")
    assert memo.total_tax_amount == D("1.00") + D("0.80")  # its lines' tax
    assert lines == [("mug", D("9.99"), D("1.00")), ("plate", D("10.00"), D("0.80"))]
    assert used == {memo_id}
    before = snapshot(store)
    with pytest.raises(InvalidInputError, match="used already"):
        with session_scope(store) as s:
            create_credit_memo_from_change_orders(session=s, order_summary_id=order.order_summary_id,
                                                  request=CreateCreditMemoInput(change_order_ids=[first[0]]))
    assert snapshot(store) == before
    assert_ledger_invariants(store)


def test_credit_memo_refuses_another_orders_change_order(store):
    order, (item,) = _order_with_items(store)
    other, (other_item,) = _order_with_items(store)
    foreign = _cancel(store, other, other_item, "1")
    before = snapshot(store)
    with pytest.raises(InvalidInputError, match="another order summary"):
        with session_scope(store) as s:
            create_credit_memo_from_change_orders(session=s, order_summary_id=order.order_summary_id,
                                                  request=CreateCreditMemoInput(change_order_ids=[foreign[0]]))
    assert snapshot(store) == before


def test_cancel_to_refund_flow_refunds_the_cancelled_items(store, prefect_api):
    """Cancel after capture: 1 of 3 mugs (9.99 + 1.00 tax) comes back to the card."""
    from flows.run_composition import run_composition

    order, (mug,) = _order_with_items(store, payments=("32.97",))
    out = run_composition("cancel-to-refund", {"orderSummaryId": order.order_summary_id, "submitCancelInput": {
        "changeItems": [{"orderItemSummaryId": mug, "quantity": 1, "reason": f"test {uuid.uuid4().hex[:6]}"}]}})
    assert D(out["cancel"]["totalAmount"]) == D("9.99") and D(out["cancel"]["totalTaxAmount"]) == D("1.00")
    assert D(out["refund"]["refundedAmount"]) == D("10.99")
    with session_scope(store) as s:
        assert s.get(OrderPaymentSummary, order.summaries[0]).refunded_amount == D("10.99")
        assert s.get(CreditMemo, out["memo"]["creditMemoId"]).balance == D("0")
    assert_ledger_invariants(store)


def test_steps_happen_once_per_operation(store):
    """A retried cancel-to-refund run resumes: the same operation gets the same change order
    and credit memo back instead of cancelling and crediting twice."""
    order, (mug,) = _order_with_items(store)
    operation = str(uuid.uuid4())
    request = SubmitCancelInput(change_items=[ChangeItem(order_item_summary_id=mug, quantity=D(1))])
    made = []
    for _ in range(2):
        with session_scope(store) as s:
            change_order = submit_cancel_items(session=s, order_summary_id=order.order_summary_id, request=request,
                                               operation_id=operation)
            memo = create_credit_memo_from_change_orders(
                session=s, order_summary_id=order.order_summary_id,
                request=CreateCreditMemoInput(change_order_ids=[change_order.id]), operation_id=operation)
            made.append((change_order.id, memo.id))
    assert made[0] == made[1]
    with session_scope(store) as s:
        assert s.get(OrderItemSummary, mug).quantity_canceled == D(1)
    assert_ledger_invariants(store)


@pytest.mark.parametrize("quantity", ["0.00001", "1.23456"])
def test_quantities_finer_than_the_store_keeps_are_refused(quantity):
    """PostgreSQL's NUMERIC(19,4) would round 0.00001 to 0 while the credit was priced on it."""
    with pytest.raises(ValueError):
        ChangeItem(order_item_summary_id="10uAAAAAAAAAAAAAAA", quantity=D(quantity))


def test_excess_funds_only_when_the_cancel_comes_after_capture(store):
    """Captured 10.00 of a 32.97 order (the rest authorized elsewhere): cancelling a mug
    frees nothing; once all is captured a cancel frees exactly its credit, and credit put
    on a credit memo is not counted again."""
    from actions.change_orders import change_order_output

    order, (mug,) = _order_with_items(store, payments=("10.00",))
    with session_scope(store) as s:
        before_capture = change_order_output(s, s.get(ChangeOrder, _cancel(store, order, mug, "1")[0]))
    assert before_capture.excess_funds_amount == 0
    paid, (mug2,) = _order_with_items(store, payments=("32.97",))
    first = _cancel(store, paid, mug2, "1")
    with session_scope(store) as s:
        assert change_order_output(s, s.get(ChangeOrder, first[0])).excess_funds_amount == D("10.99")
        create_credit_memo_from_change_orders(session=s, order_summary_id=paid.order_summary_id,
                                              request=CreateCreditMemoInput(change_order_ids=[first[0]]))
    with session_scope(store) as s:
        assert change_order_output(s, s.get(ChangeOrder, first[0])).excess_funds_amount == 0  # the memo will refund it
