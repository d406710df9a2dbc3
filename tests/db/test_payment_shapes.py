"""OrderPaymentSummary, Payment and PaymentAuthorization read Salesforce's other names
(Object/Field Reference v67): computed from the engine's columns, or 0/null for what the
engine does not keep; the same by SOQL as by GET."""

from __future__ import annotations

from decimal import Decimal as D

from db.engine import session_scope
from db.models import PaymentAuthorizationCreate
from db.soql import parse, run
from db.sobjects import create_payment_authorization, describe_sobject, read_sobject
from tests.factories import make_order


def _read_and_query(s, name: str, record_id: str, fields: tuple[str, ...]) -> dict:
    read = read_sobject(session=s, object_name=name, record_id=record_id)
    _total, [row] = run(s, parse(f"SELECT {', '.join(fields)} FROM {name} WHERE Id = '{record_id}'"), offset=0, batch=1)
    assert row == {f: read[f] for f in fields}
    assert set(fields) <= {f["name"] for f in describe_sobject(name, "/x")["fields"]}
    return read


def test_salesforces_other_read_names(store):
    with session_scope(store) as s:
        order = make_order(s, payments=["30.00"])
        ops = order.summaries[0]
        authorization = create_payment_authorization(session=s, obj_in=PaymentAuthorizationCreate(
            order_payment_summary_id=ops, payment_gateway_id=order.gateway_id, amount=D("20.00"))).id
    with session_scope(store) as s:
        summary = _read_and_query(s, "OrderPaymentSummary", ops, (
            "AuthorizationReversalAmount", "PendingAuthorizationAmount", "PendingReverseAuthAmount",
            "ReservedBalanceTotalAmount", "LastPaymentGatewayLogId", "PaymentMethodId", "FullName", "AvailableToRefundAmount"))
        payment = _read_and_query(s, "Payment", order.payments[ops][0], (
            "TotalApplied", "NetApplied", "TotalRefundApplied", "NetRefundApplied", "AppliedAmount", "RefundedAmount"))
        held = _read_and_query(s, "PaymentAuthorization", authorization, (
            "TotalPaymentCaptureAmount", "TotalAuthReversalAmount", "Balance", "Amount"))
    assert [summary[f] for f in ("AuthorizationReversalAmount", "PendingAuthorizationAmount", "PendingReverseAuthAmount",
                                 "ReservedBalanceTotalAmount")] == [D("0.00")] * 4
    assert (summary["LastPaymentGatewayLogId"], summary["PaymentMethodId"], summary["FullName"]) == (None, None, None)
    assert summary["AvailableToRefundAmount"] == D("30.00")
    assert [payment[f] for f in ("TotalApplied", "NetApplied", "TotalRefundApplied", "NetRefundApplied")] == [D("0.00")] * 4
    assert (held["TotalPaymentCaptureAmount"], held["TotalAuthReversalAmount"], held["Balance"]) == (
        D("0.00"), D("0.00"), D("20.00"))
