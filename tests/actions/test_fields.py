"""Optional text fields take an explicit null (JSON clients send them) as well as nothing."""

import pytest
from pydantic import BaseModel, ValidationError

from actions.change_orders import ChangeItem
from actions.payment_refunds import RefundPaymentInput
from actions.returns import ReturnOrderItemInput, ReturnOrderLineItemInput
from api.routes.refunds import RefundRequest

CASES = [
    (ChangeItem, {"orderItemSummaryId": "10uAAAAAAAAAAAAAAA", "quantity": 1}, "reason"),
    (ReturnOrderLineItemInput, {"orderItemSummaryId": "10uAAAAAAAAAAAAAAA", "quantityExpected": 1}, "reasonForReturn"),
    (ReturnOrderItemInput, {"returnOrderLineItemId": "0RLAAAAAAAAAAAAAAA", "quantityReceived": 1}, "reasonForRejection"),
    *[(RefundPaymentInput, {"chargeId": "0a3AAAAAAAAAAAAAAA"}, f)
      for f in ("reason", "note", "currencyCode", "directDebitOverrideReason")],
    *[(RefundRequest, {"chargeId": "0a3AAAAAAAAAAAAAAA"}, f) for f in ("reason", "note", "currencyCode")],
]


@pytest.mark.parametrize("model, base, field", CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_explicit_null_is_accepted_and_lengths_still_checked(model: type[BaseModel], base: dict, field: str):
    assert model.model_validate({**base, field: None}) is not None
    with pytest.raises(ValidationError):
        model.model_validate({**base, field: "x" * 1001})
