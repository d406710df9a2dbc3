"""The ledger audit finds each kind of corruption (on a store of its own, ``own_store``,
so the shared store stays clean for every other test's invariant checks)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from sqlmodel import select

from actions.audit_ledger import find_violations
from db.engine import session_scope
from db.models import (
    CreditMemo, Invoice, OrderPaymentSummary, Payment, PaymentAuthorization, PaymentAuthorizationCreate,
    PaymentGatewayLog,
)
from db.sobjects import create_payment_authorization
from tests.factories import make_order


def _order_with_a_processed_refund(url):
    """A clean ledger with every kind of row: payments, an authorization, a refund and its log."""
    from prefect import flow

    from actions.ensure_refunds import EnsureRefundsInput, ensure_refunds

    with session_scope(url) as s:
        order = make_order(s, payments=["60.00", "40.00"], credit_memo="30.00", invoices=["5.00"])
        create_payment_authorization(session=s, obj_in=PaymentAuthorizationCreate(
            order_payment_summary_id=order.summaries[1], payment_gateway_id=order.gateway_id, amount=D("25.00")))

    @flow
    def refund():
        return ensure_refunds(order.order_summary_id, EnsureRefundsInput(
            credit_memo_id=order.credit_memo_id, invoices_to_pay=order.invoice_ids), "audit-test-operation")

    refund()
    return order


def _rules(url):
    with session_scope(url) as s:
        return {(v.record_id, v.rule) for v in find_violations(s)[1]}


def corrupt_refunded(s, order):
    ops = s.get(OrderPaymentSummary, order.summaries[0])
    ops.refunded_amount += D("0.01")
    return ops.id, "refunded-rollup"


def corrupt_memo_balance(s, order):
    memo = s.get(CreditMemo, order.credit_memo_id)
    memo.balance += D("1.00")
    return memo.id, "credit-memo-used-rollup"


def corrupt_invoice_balance(s, order):
    invoice = s.get(Invoice, order.invoice_ids[0])
    invoice.balance = D("-1.00")
    return invoice.id, "balance-within-total"


def corrupt_captured(s, order):
    payment = s.get(Payment, order.payments[order.summaries[1]][0])
    payment.amount += D("5.00")
    return order.summaries[1], "captured-rollup"


def corrupt_authorized(s, order):
    authorization = s.exec(select(PaymentAuthorization)).one()
    authorization.pending_capture_amount = D("30.00")
    return authorization.id, "balance-within-total"


def corrupt_gateway_log(s, order):
    log = s.exec(select(PaymentGatewayLog)).first()
    s.delete(log)
    return log.reference_entity_id, "gateway-log-rows-rollup"


def corrupt_over_refund(s, order):
    ops = s.get(OrderPaymentSummary, order.summaries[0])
    ops.pending_refund_amount += D("100.00")
    return ops.id, "refunded-within-captured"


@pytest.mark.parametrize("corrupt", [corrupt_refunded, corrupt_memo_balance, corrupt_invoice_balance, corrupt_captured,
                                     corrupt_authorized, corrupt_gateway_log, corrupt_over_refund])
def test_the_audit_finds_each_corruption(own_store, prefect_api, corrupt):
    order = _order_with_a_processed_refund(own_store)
    assert _rules(own_store) == set()
    with session_scope(own_store) as s:
        expected = corrupt(s, order)
    assert expected in _rules(own_store)


def test_the_audit_flow_fails_and_publishes_the_violations(own_store, prefect_api):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    from flows.audit_ledger import audit_ledger

    order = _order_with_a_processed_refund(own_store)
    assert audit_ledger().violations == []
    with session_scope(own_store) as s:
        record_id, rule = corrupt_refunded(s, order)
    started = datetime.now(UTC)
    with pytest.raises(RuntimeError, match="ledger invariant violations") as failed:
        audit_ledger()
    with get_client(sync_client=True) as client:  # by key: the session's server holds many other artifacts
        published = client.read_latest_artifacts(artifact_filter=ArtifactCollectionFilter(
            key=ArtifactCollectionFilterKey(any_=["ledger-violations"])))
        assert len(published) == 1 and record_id in str(published[0].data) and rule in str(published[0].data), failed.value
        publisher = client.read_flow_run(published[0].flow_run_id)
    assert publisher.state.is_failed() and publisher.start_time >= started  # by the run that just failed


def _order_with_changes(url):
    """A clean ledger with every kind of order change: a cancel, a fulfilment invoice, a
    return order partly received with a fee, the fee invoiced."""
    from actions.change_orders import (
        ChangeItem, CreateInvoiceInput, SubmitCancelInput, create_invoice_from_fee_change_orders, submit_cancel_items,
    )
    from actions.fulfillment import FulfillItemsInput, FulfillmentItem, fulfill_and_invoice
    from actions.returns import (
        CreateReturnOrderInput, ReturnItemsInput, ReturnOrderFeeInput, ReturnOrderItemFeeInput, ReturnOrderItemInput,
        ReturnOrderLineItemInput, create_return_order_lines, process_return_items,
    )
    from db.models import OrderItemSummaryCreate
    from db.sobjects import create_order_item_summary

    with session_scope(url) as s:
        order = make_order(s, payments=["100.00"])
        item = create_order_item_summary(session=s, obj_in=OrderItemSummaryCreate(
            order_summary_id=order.order_summary_id, name="shirt", unit_price=D("20.00"), quantity_ordered=D(4),
            total_tax_amount=D("2.00"))).id
        submit_cancel_items(session=s, order_summary_id=order.order_summary_id, request=SubmitCancelInput(
            change_items=[ChangeItem(order_item_summary_id=item, quantity=D(1))]))
        fulfill_and_invoice(session=s, order_summary_id=order.order_summary_id, request=FulfillItemsInput(
            fulfillment_items=[FulfillmentItem(order_item_summary_id=item, quantity=D(3))]))
        return_order, (line,), (fee,) = create_return_order_lines(session=s, request=CreateReturnOrderInput(
            order_summary_id=order.order_summary_id,
            return_order_line_items=[ReturnOrderLineItemInput(order_item_summary_id=item, quantity_expected=D(3))],
            return_order_fees=[ReturnOrderFeeInput(name="fee", amount=D("2.00"))]))
        out = process_return_items(session=s, return_order_id=return_order.id, request=ReturnItemsInput(
            return_order_items=[ReturnOrderItemInput(return_order_line_item_id=line.id, quantity_received=D(1))],
            return_order_item_fees=[ReturnOrderItemFeeInput(return_order_line_item_id=fee.id)]))
        create_invoice_from_fee_change_orders(session=s, order_summary_id=order.order_summary_id, request=CreateInvoiceInput(
            change_order_ids=[out.fee_change_order_id]))
    return item, line.id, out


def _change_corruptions():
    from db.models import ChangeOrder, OrderItemSummary, ReturnOrderLineItem

    def returned(s, item, line, out):
        s.get(OrderItemSummary, item).quantity_returned += 1
        return item, "item-return-units-rollup"

    def cancelled(s, item, line, out):
        s.get(OrderItemSummary, item).quantity_canceled -= 1
        return item, "item-cancel-units-rollup"

    def return_initiated(s, item, line, out):
        s.get(OrderItemSummary, item).quantity_return_initiated -= 1
        return item, "item-return-initiated-units-rollup"

    def fee_sign(s, item, line, out):
        fee = s.get(ChangeOrder, out.fee_change_order_id)
        fee.total_amount = D("2.00")
        return fee.id, "change-order-sign"

    def fee_invoice(s, item, line, out):
        invoice = s.get(Invoice, s.get(ChangeOrder, out.fee_change_order_id).invoice_id)
        invoice.total_amount += D("1.00")
        return invoice.id, "invoice-from-changes-rollup"

    def fulfillment_invoice_tax(s, item, line, out):
        invoice = s.exec(select(Invoice).where(Invoice.description == "Fulfilled items")).one()
        assert invoice.total_tax_amount == D("1.50")  # the tax of its line: 3 of the 4 shirts' 2.00
        invoice.total_tax_amount += D("0.01")
        return invoice.id, "document-tax-rollup"

    def received(s, item, line, out):
        s.get(ReturnOrderLineItem, line).quantity_rejected = D(1)
        return line, "received-returned-or-rejected"

    return [returned, cancelled, return_initiated, fee_sign, fee_invoice, fulfillment_invoice_tax, received]


@pytest.mark.parametrize("corrupt", _change_corruptions(), ids=lambda f: f.__name__)
def test_the_audit_finds_each_corruption_of_order_changes(own_store, corrupt):
    item, line, out = _order_with_changes(own_store)
    assert _rules(own_store) == set()
    with session_scope(own_store) as s:
        expected = corrupt(s, item, line, out)
    assert expected in _rules(own_store)


def test_the_audit_reads_the_store_a_batch_of_orders_at_a_time_and_misses_nothing(own_store, prefect_api):
    orders = [_order_with_a_processed_refund(own_store) for _ in range(3)]
    item, _line, _out = _order_with_changes(own_store)
    with session_scope(own_store) as s:
        expected = {corrupt_refunded(s, orders[0]), corrupt_gateway_log(s, orders[1])}
        from db.models import OrderItemSummary

        s.get(OrderItemSummary, item).quantity_returned += 1
        expected.add((item, "item-return-units-rollup"))
    with session_scope(own_store) as s:
        whole_checked, whole = find_violations(s)
    for orders_per_batch in (1, 2):
        with session_scope(own_store) as s:
            checked, found = find_violations(s, orders_per_batch=orders_per_batch)
        assert checked == whole_checked and sorted(found, key=str) == sorted(whole, key=str)
    assert expected <= {(v.record_id, v.rule) for v in whole}
