"""What makes two synchronous requests "the same" under one Idempotency-Key."""

from decimal import Decimal

from api.sync_actions import fingerprint


def test_the_same_request_under_another_api_version_is_the_same_request():
    body = {"changeItems": [{"orderItemSummaryId": "10uAAAAAAAAAAAAAAA", "quantity": Decimal("1")}]}
    path = "/services/data/v{}/commerce/order-management/order-summaries/1OsAAAAAAAAAAAAAAA/actions/submit-cancel"
    assert fingerprint("POST", path.format("60.0"), body) == fingerprint("POST", path.format("58.0"), body)


def test_key_order_does_not_matter_but_every_value_does():
    path = "/services/data/v60.0/commerce/returns/return-orders"
    a = {"orderSummaryId": "1OsAAAAAAAAAAAAAAA", "returnOrderFees": [{"name": "fee", "amount": Decimal("5.00")}]}
    b = {"returnOrderFees": [{"amount": Decimal("5.00"), "name": "fee"}], "orderSummaryId": "1OsAAAAAAAAAAAAAAA"}
    changed = {**a, "returnOrderFees": [{"name": "fee", "amount": Decimal("5.01")}]}
    assert fingerprint("POST", path, a) == fingerprint("POST", path, b)
    assert fingerprint("POST", path, a) != fingerprint("POST", path, changed)
    assert fingerprint("POST", path, a) != fingerprint("POST", path + "/x", a)


def test_the_refunds_api_is_documented_in_openapi():
    from api.main import create_app

    paths = create_app().openapi()["paths"]
    for path, method in [("/payments/refunds/v1/refunds", "post"), ("/payments/refunds/v1/refunds/{refund_id}", "get"),
                         ("/payments/refunds/v1/refunds/query", "post"), ("/payments/refunds/v1/refundability", "get")]:
        operation = paths[path][method]
        assert operation["summary"] and operation.get("description"), path
    create = paths["/payments/refunds/v1/refunds"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"refund", "previouslyRefundedAmount", "directDebitOverride"} <= set(create["properties"])
