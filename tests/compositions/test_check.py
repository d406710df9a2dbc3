"""compositions.check: a composition is checked whole against the actions' typed inputs
and outputs, every problem reported at once with its step and field."""

from __future__ import annotations

from decimal import Decimal

import pytest

from compositions.check import check
from compositions.model import Composition

RETURN_TO_REFUND = {
    "name": "return-to-refund",
    "inputs": [{"name": "returnOrderId", "type": "id"}, {"name": "feeLineIds", "type": "ids"}],
    "steps": [
        {"id": "receive", "action": "return-return-order-items", "inputs": {
            "returnOrderId": {"ref": "inputs.returnOrderId"},
            "returnOrderItemFees": [{"returnOrderLineItemId": "0RL000000000000AAA"}]}},
        {"id": "make-memo", "action": "create-credit-memo",
         "when": {"ref": "steps.receive.creditAmount", "operator": "greater than", "value": "0"},
         "inputs": {"orderSummaryId": {"ref": "steps.receive.orderSummaryId"},
                    "changeOrderIds": [{"ref": "steps.receive.changeOrderId"}]}},
        {"id": "refund", "action": "ensure-refunds-async",
         "when": {"ref": "steps.make-memo.creditMemoId", "operator": "is set"}, "inputs": {
            "orderSummaryId": {"ref": "steps.receive.orderSummaryId"},
            "creditMemoId": {"ref": "steps.make-memo.creditMemoId"}}},
    ],
}


def problems_of(spec: dict) -> list[str]:
    return [str(p) for p in check(Composition.model_validate(spec))]


def with_step(index: int, **changes) -> dict:
    spec = {**RETURN_TO_REFUND, "steps": [dict(s) for s in RETURN_TO_REFUND["steps"]]}
    spec["steps"][index].update(changes)
    return spec


def test_a_well_formed_composition_has_no_problems():
    assert problems_of(RETURN_TO_REFUND) == []


def test_an_unknown_action():
    assert problems_of(with_step(2, action="refund-everything")) == [
        "refund.action: unknown action 'refund-everything' (actions: submit-cancel, submit-return, create-credit-memo, "
        "create-invoice-from-change-orders, create-return-order, return-return-order-items, fulfil-items, "
        "ensure-refunds-async, ensure-funds-async, flag-open-balance)"]


def test_a_missing_required_input_and_an_unknown_one():
    found = problems_of(with_step(1, inputs={"changeOrderIds": [], "color": "blue"}))
    assert found == ["make-memo.color: the action has no input 'color' (inputs: orderSummaryId, changeOrderIds)",
                     "make-memo.orderSummaryId: a required input is missing"]


def test_a_later_step_an_unknown_step_and_an_unknown_input_are_each_reported():
    spec = with_step(0, inputs={"returnOrderId": {"ref": "steps.refund.orderSummaryId"}})
    spec["steps"][1] = {**spec["steps"][1], "inputs": {"orderSummaryId": {"ref": "inputs.orderId"},
                                                       "changeOrderIds": [{"ref": "steps.nowhere.changeOrderId"}]}}
    found = problems_of(spec)
    assert found[0].startswith("receive.returnOrderId: steps.refund.orderSummaryId: step 'refund' runs after this one")
    assert "make-memo.orderSummaryId: inputs.orderId: the composition has no input 'orderId'" in found
    assert "make-memo.changeOrderIds[0]: steps.nowhere.changeOrderId: there is no step 'nowhere'" in found


def test_a_step_that_refers_to_itself_is_a_cycle():
    found = problems_of(with_step(1, inputs={"orderSummaryId": {"ref": "steps.make-memo.creditMemoId"},
                                             "changeOrderIds": []}))
    assert found == ["make-memo.orderSummaryId: steps.make-memo.creditMemoId: step 'make-memo' runs after this one "
                     "(or is this one): a step may use only earlier steps' outputs (no cycles)"]


def test_a_path_the_output_does_not_have():
    found = problems_of(with_step(2, inputs={"orderSummaryId": {"ref": "steps.receive.orderSummaryId"},
                                             "creditMemoId": {"ref": "steps.make-memo.memoId"}}))
    assert found == ["refund.creditMemoId: steps.make-memo.memoId: no field 'memoId' here (fields: creditMemoId, totalAmount)"]


@pytest.mark.parametrize(("inputs", "expected"), [
    ({"orderSummaryId": {"ref": "steps.receive.creditAmount"}, "changeOrderIds": []},
     "make-memo.orderSummaryId: steps.receive.creditAmount is an amount, a record id is due"),
    ({"orderSummaryId": {"ref": "steps.receive.orderSummaryId"}, "changeOrderIds": {"ref": "steps.receive.changeOrderId"}},
     "make-memo.changeOrderIds: steps.receive.changeOrderId is a record id, a list of a record id is due"),
    ({"orderSummaryId": {"ref": "inputs.feeLineIds"}, "changeOrderIds": []},
     "make-memo.orderSummaryId: inputs.feeLineIds is a list of a record id, a record id is due"),
])
def test_a_type_that_does_not_fit(inputs, expected):
    assert problems_of(with_step(1, inputs=inputs)) == [expected]


def test_a_decision_on_something_not_comparable():
    found = problems_of(with_step(1, when={"ref": "steps.receive.returnLineItemSplits", "operator": "equals", "value": "x"}))
    assert found == ["make-memo.when: steps.receive.returnLineItemSplits is a list of a record: a Decision compares one value"]
    found = problems_of(with_step(1, when={"ref": "steps.receive.changeOrderId", "operator": "greater than", "value": "1"}))
    assert found == ["make-memo.when: 'greater than' compares numbers; steps.receive.changeOrderId is a record id"]


def test_a_loop_over_a_list_and_over_something_that_is_not_one():
    loop = {"id": "refund-each", "action": "ensure-refunds-async", "for_each": "steps.receive.returnLineItemSplits",
            "inputs": {"orderSummaryId": {"ref": "steps.receive.orderSummaryId"},
                       "creditMemoId": {"ref": "item.newReturnOrderItemId"}}}
    assert problems_of({**RETURN_TO_REFUND, "steps": [*RETURN_TO_REFUND["steps"], loop]}) == []
    bad = {**loop, "for_each": "steps.receive.creditAmount"}
    assert problems_of({**RETURN_TO_REFUND, "steps": [*RETURN_TO_REFUND["steps"], bad]}) == [
        "refund-each.for_each: steps.receive.creditAmount is an amount, not a list to loop over",
        "refund-each.creditMemoId: item.newReturnOrderItemId: 'item' exists only in a step with for_each"]


def test_every_problem_is_reported_at_once():
    spec = with_step(2, action="nope")
    spec["steps"][1] = {**spec["steps"][1], "inputs": {}}
    assert len(problems_of(spec)) == 3  # two missing inputs of make-memo, the unknown action


def test_the_shape_refuses_code():
    with pytest.raises(ValueError):
        Composition.model_validate(with_step(0, inputs={"returnOrderId": {"ref": "__import__('os')"}}))
    with pytest.raises(ValueError):
        Composition.model_validate({**RETURN_TO_REFUND, "name": "Bad Name"})


def test_an_input_from_a_step_that_may_be_skipped_needs_a_decision_on_it():
    spec = with_step(2, when=None)
    assert problems_of(spec) == [
        "refund.creditMemoId: step 'make-memo' may be skipped (it has a Decision): give this step a Decision on "
        "steps.make-memo (e.g. steps.make-memo.<field> is set)"]


def test_what_would_fail_at_run_time_is_refused_up_front():
    spec = with_step(2, inputs={"orderSummaryId": None, "creditMemoId": {"ref": "steps.make-memo.creditMemoId"},
                                "strategy": "Whatever", "excessFundsAmount": {"ref": "steps.receive.returnLineItemSplits"},
                                "sequences": [{"orderPaymentSummaryId": "0aP000000000000001",
                                               "amount": Decimal("12345678.123456789")}]})
    assert problems_of(spec) == [
        "refund.orderSummaryId: a required input is missing",
        "refund.strategy: 'Whatever' is not one of ExactMatchElseLargest, FewestPayments",
        "refund.excessFundsAmount: steps.receive.returnLineItemSplits is a list of a record, an amount is due",
        "refund.sequences[0].amount: 12345678.123456789 has more than 15 significant digits",
    ]


def test_an_amount_is_not_a_quantity_and_lists_of_lists_stay_nested():
    spec = {"name": "mixed", "inputs": [{"name": "orderSummaryId", "type": "id"}, {"name": "much", "type": "amount"},
                                        {"name": "memos", "type": "ids"}],
            "steps": [
                {"id": "refund", "action": "ensure-refunds-async", "for_each": "inputs.memos",
                 "inputs": {"orderSummaryId": {"ref": "inputs.orderSummaryId"}, "creditMemoId": {"ref": "item"}}},
                {"id": "memo", "action": "create-credit-memo", "inputs": {
                    "orderSummaryId": {"ref": "inputs.orderSummaryId"},
                    "changeOrderIds": {"ref": "steps.refund.processExceptionIds"}}},
                {"id": "cancel", "action": "submit-cancel", "inputs": {
                    "orderSummaryId": {"ref": "inputs.orderSummaryId"},
                    "changeItems": [{"orderItemSummaryId": "10u000000000000001", "quantity": {"ref": "inputs.much"}}]}}]}
    assert problems_of(spec) == [
        "memo.changeOrderIds: steps.refund.processExceptionIds is a list of a list of a record id, "
        "a list of a record id is due",
        "cancel.changeItems[0].quantity: inputs.much is an amount, a quantity is due",
    ]


def test_check_is_not_a_composition_name():
    with pytest.raises(ValueError, match="'check' is the REST path"):
        Composition.model_validate({**RETURN_TO_REFUND, "name": "check"})

