"""End to end through a Stripe PaymentGateway: a refund made at Stripe outside the engine
(the stripe SDK against localstripe on loopback) is found by the served reconcile-gateway
deployment, started through Prefect's API, and recorded, after which Ensure Refunds cannot
refund that money again (a memo for the whole charge is refused; what is left is refunded). What the run did is read back as a Salesforce client reads it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from simple_salesforce.exceptions import SalesforceError

from tests.e2e.test_ensure_refunds_async import ACTION, wait_for_operation
from tests.e2e.test_record_triggered_flows import events_of
from tests.e2e.test_stripe_gateway import BLOCK, refunded_at_stripe, stripe_client, stripe_order  # noqa: F401 - the fixture
from tests.ledger import assert_ledger_invariants

pytestmark = pytest.mark.e2e
DEPLOYMENT = "reconcile-gateway/reconcile-gateway"


def reconcile(since: datetime) -> FlowRun:
    """A run of the served deployment over [since, now) on the Stripe block's account, to its end."""
    run = run_deployment(DEPLOYMENT, parameters={"reconcile_input": {"windowStart": since.isoformat(), "gateway": BLOCK}},
                         timeout=180, poll_interval=0.5)
    assert run.state is not None and run.state.is_completed(), (run.id, run.state)
    return run


def soql(sf, query: str) -> list[dict]:
    return sf.query_all(query)["records"]


def test_a_refund_made_at_stripe_is_recorded_and_cannot_be_refunded_again(sf, engine, stripe_client):  # noqa: F811
    since = datetime.now(UTC) - timedelta(seconds=1)
    _gateway, order, (charge,), (payment,) = stripe_order(sf, stripe_client, ["80.00"])
    ops = sf.Payment.get(payment)["OrderPaymentSummaryId"]
    # Someone refunds 30.00 in Stripe's dashboard: no key of ours, and the engine never hears of it.
    outside = stripe_client.v1.refunds.create(params={"charge": charge, "amount": 3000})
    assert outside.status == "succeeded" and outside.to_dict()["metadata"] == {}

    first = reconcile(since)

    [row] = soql(sf, "SELECT Id, Difference, Status, Resolution, RecordedRefundId, GatewayReference "
                     f"FROM ReconciliationFinding WHERE GatewayReference = '{outside.id}'")
    assert (row["Difference"], row["Status"], row["Resolution"]) == ("MissingInStore", "Resolved", "RecordedExternalRefund")
    assert row["GatewayReference"] == outside.id and row["RecordedRefundId"]
    finding = sf.ReconciliationFinding.get(row["Id"])
    assert finding["RecordedRefundId"] == row["RecordedRefundId"] and finding["OrderSummaryId"] == order
    assert finding["PaymentId"] == payment and finding["RecordKind"] == "Refund" and finding["StoreRecordId"] is None
    assert D(str(finding["GatewayAmount"])) == D("30.00") and finding["GatewayCurrency"] == "USD"
    assert finding["FirstSeenRunId"] == finding["LastSeenRunId"] == finding["ResolvedRunId"] == str(first.id)
    # The run found nothing else: the engine's own charge matched Stripe's.
    assert [r["Id"] for r in soql(sf, f"SELECT Id FROM ReconciliationFinding WHERE LastSeenRunId = '{first.id}'")] == [row["Id"]]

    recorded = sf.Refund.get(row["RecordedRefundId"])
    assert (recorded["Status"], D(str(recorded["Amount"]))) == ("Processed", D("30.00"))
    assert (recorded["PaymentId"], recorded["GatewayRefNumber"]) == (payment, outside.id)
    assert D(str(sf.OrderPaymentSummary.get(ops)["AvailableToRefundAmount"])) == D("50.00")
    [told] = events_of(f"om.refund.{recorded['Id']}", "om.refund.recorded-from-gateway", wait_for=1)
    assert told["payload"]["amount"] == "30.00" and told["payload"]["gatewayReferenceNumber"] == outside.id

    # A credit memo for the whole 80.00: Ensure Refunds refuses it before any run starts (as
    # Salesforce does when a memo exceeds AvailableToRefundAmount), so nothing moves at Stripe.
    memo = sf.CreditMemo.create({"OrderSummaryId": order, "TotalAmount": 80.00})["id"]
    with pytest.raises(SalesforceError) as refused:
        sf.restful(ACTION.format(order), method="POST", json={"creditMemoId": memo})
    assert refused.value.content[0]["errorCode"] == "INSUFFICIENT_AVAILABLE_TO_REFUND"
    assert "(50.00)" in refused.value.content[0]["message"]
    assert refunded_at_stripe(stripe_client, charge) == [3000]
    assert D(str(sf.CreditMemo.get(memo)["Balance"])) == D("80.00")
    # What is left, 50.00, is refunded through Stripe: 80.00 there in all, never more.
    rest = sf.CreditMemo.create({"OrderSummaryId": order, "TotalAmount": 50.00})["id"]
    operation_id = sf.restful(ACTION.format(order), method="POST", json={"creditMemoId": rest})["backgroundOperationId"]
    assert wait_for_operation(sf, operation_id)["Status"] == "Complete"
    assert sorted(refunded_at_stripe(stripe_client, charge)) == [3000, 5000]
    assert D(str(sf.CreditMemo.get(rest)["Balance"])) == D("0")
    assert D(str(sf.OrderPaymentSummary.get(ops)["AvailableToRefundAmount"])) == D("0")

    # Run again over the same window: every record matches now; nothing is found or recorded.
    second = reconcile(since)

    assert soql(sf, f"SELECT Id FROM ReconciliationFinding WHERE LastSeenRunId = '{second.id}'") == []
    assert [r["Id"] for r in soql(sf, f"SELECT Id FROM ReconciliationFinding WHERE OrderSummaryId = '{order}'")] == [row["Id"]]
    again = sf.ReconciliationFinding.get(row["Id"])
    assert (again["Status"], again["LastSeenRunId"], again["TimesOpened"]) == ("Resolved", str(first.id), 1)
    refunds = soql(sf, f"SELECT Id, Amount, Status FROM Refund WHERE PaymentId = '{payment}'")
    assert sorted((D(str(r["Amount"])), r["Status"]) for r in refunds) == [(D("30.00"), "Processed"), (D("50.00"), "Processed")]

    [event] = events_of(f"om.reconciliation.{row['Id']}", "om.reconciliation.difference", wait_for=1)
    assert event["payload"]["difference"] == "MissingInStore" and event["payload"]["recordedRefundId"] == recorded["Id"]
    time.sleep(2)  # an event the second run sent would have arrived by now
    assert len(events_of(f"om.reconciliation.{row['Id']}", "om.reconciliation.difference")) == 1
    assert_ledger_invariants(engine.store_url)
