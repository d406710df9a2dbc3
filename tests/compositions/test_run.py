"""The runner's pure parts: references resolved, Decisions compared exactly, step operation
ids derived (the parts that touch the store and Prefect are tested end to end)."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest

from compositions.model import Decision, Reference, Step
from compositions.run import SKIPPED, Scope, holds, step_operation_id


def decision(operator: str, value=None) -> Decision:
    return Decision(ref="steps.memo.totalAmount", operator=operator, value=value)


@pytest.mark.parametrize(("operator", "value", "amount", "expected"), [
    ("greater than", 0, D("0.01"), True),
    ("greater than", 0, D("0.00"), False),
    ("equals", 0.1, D("0.10"), True),  # the literal 0.1 is the Decimal 0.1, not the binary float
    ("at least", "19.99", D("19.99"), True),
    ("less than", 19.99, D("19.989"), True),
    ("at most", 19.99, D("19.991"), False),
    ("not equals", 5, D("5.00"), False),
])
def test_money_compares_exactly(operator, value, amount, expected):
    assert holds(decision(operator, value), amount) is expected


def test_is_set_and_what_a_skipped_step_gives():
    assert holds(decision("is set"), "50g000000000000001") is True
    assert holds(decision("is set"), SKIPPED) is False
    assert holds(decision("is not set"), []) is True
    assert holds(decision("greater than", 0), SKIPPED) is False  # nothing to compare: not greater
    assert holds(decision("not equals", 0), SKIPPED) is False


def test_references_read_inputs_outputs_and_the_loop_element():
    scope = Scope(inputs={"orderSummaryId": "1Os000000000000001", "returnItemsInput": {"returnOrderItems": [{"a": 1}]}},
                  steps={"receive": [{"changeOrderId": "801A"}, {"changeOrderId": "801B"}], "fee": SKIPPED},
                  item="0RL000000000000001")
    step = Step.model_validate({"id": "memo", "action": "create-credit-memo", "inputs": {
        "orderSummaryId": {"ref": "inputs.orderSummaryId"},
        "changeOrderIds": {"ref": "steps.receive.changeOrderId"},  # a field of each Loop output
        "invoicesToPay": [{"invoiceId": {"ref": "steps.fee.invoiceId"}}, {"invoiceId": "3tt000000000000001"}],
        "creditMemoId": {"ref": "steps.fee.creditMemoId"},  # left out
        "line": {"ref": "item"},
        "items": {"ref": "inputs.returnItemsInput.returnOrderItems"}}})
    assert scope.resolve(step.inputs) == {
        "orderSummaryId": "1Os000000000000001", "changeOrderIds": ["801A", "801B"],
        "invoicesToPay": [{"invoiceId": "3tt000000000000001"}],  # the element needing a skipped step's output is dropped
        "line": "0RL000000000000001", "items": [{"a": 1}]}
    assert scope.resolve(Reference(ref="steps.nowhere.id")) is None


def test_each_step_and_loop_element_acts_under_its_own_operation_id():
    run = str(uuid.uuid4())
    ids = {step_operation_id(run, key) for key in ("cancel-first", "cancel-second", "receive[0]", "receive[1]")}
    assert len(ids) == 4
    assert step_operation_id(run, "receive[1]") == step_operation_id(run, "receive[1]")  # a resumed run finds it
    assert step_operation_id(str(uuid.uuid4()), "receive[1]") not in ids
    assert all(len(i) == 36 and uuid.UUID(i) for i in ids)  # fits background_operation_id
