"""Salesforce resources this engine has no data for answer a clear error that says what to
do instead, and change nothing."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from tests.ledger import snapshot


def test_creating_an_order_summary_from_an_order_is_refused_with_the_way_to_do_it(sf, engine):
    before = snapshot(engine.store_url)
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.restful("commerce/order-management/order-summaries", method="POST",
                   json={"orderId": "801000000000001AAA", "orderLifeCycleType": "MANAGED"})
    error = refused.value.content[0]
    assert error["errorCode"] == "INVALID_INPUT" and "sobjects/OrderSummary" in error["message"]
    assert snapshot(engine.store_url) == before
