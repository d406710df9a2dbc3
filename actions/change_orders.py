"""Submit Cancel, Submit Return, Create Credit Memo and Create Invoice from Change Orders.

* Submit Cancel takes quantities off order items that are not fulfilled yet and records
  a Cancel change order carrying the items' share of amount and tax (domain/changes.py).
  Cancelling before capture needs no refund; after capture its credit memo is refunded
  by Ensure Refunds.
* Submit Return returns fulfilled units at once, without a return order, as a Return
  change order (returns received through a return order: actions/returns.py).
* Create Credit Memo turns Cancel/Return change orders into one credit memo, a line per
  change order item; Create Invoice from Change Orders turns Fee change orders (negative,
  as in Salesforce) into one invoice, e.g. a return fee that Ensure Refunds then pays
  from the credit memo (invoicesToPay). A change order is used once.

Each runs in one transaction under the order summary's lock: refused input writes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from prefect import get_run_logger, task
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema
from sqlmodel import Session, col, select

from actions.artifacts import link, money, publish
from actions.fields import MAX_ITEMS, ShortText, only_empty, ActionModel, Quantity, RecordId, drop_default
from db.announcements import announce
from db.engine import session_scope
from db.ids import new_id
from db.record_events import change_order_created, credit_memo_created, invoice_created
from db.ledger import lock_order_summary, lock_order_summaries, order_payment_summaries
from db.models import (
    ChangeOrder, ChangeOrderItem, ChangeOrderType, CreditMemo, CreditMemoLine, Invoice, InvoiceLine, OrderItemSummary,
    OrderSummary,
)
from domain.changes import check_quantity, excess_funds, share_from_end, share_of_line
from domain.errors import InvalidInputError, NotFoundError
from domain.money import ZERO, quantize


class ChangeItem(ActionModel):
    """Change Item Input (Connect, 48.0): a quantity of one order item to change."""

    SINCE: ClassVar[dict[str, str]] = {"changeItemFees": "57.0", "reasonForChangeText": "59.0"}

    order_item_summary_id: RecordId = Field(title="Order Item Summary Id", description="The order item (10u...).")
    quantity: Quantity = Field(title="Quantity", description="How many units to change (> 0, at most 4 decimals).")
    reason: ShortText | SkipJsonSchema[None] = Field(
        default=None, title="Reason", description="Why (Salesforce: a value of the Reason picklist).",
        json_schema_extra=drop_default,
    )
    shipping_reduction_flag: bool = Field(
        default=False, title="Shipping Reduction Flag",
        description="Salesforce's: also reduce the shipping charge. Orders here have no delivery charges, so it "
                    "changes nothing; accepted because Salesforce requires it.",
    )
    reason_for_change_text: ShortText | SkipJsonSchema[None] = Field(
        default=None, title="Reason For Change Text", description="Free text on why (59.0); kept when no reason is given.",
        json_schema_extra=drop_default,
    )
    change_item_fees: only_empty(
        "change item fees are not supported (return fees come from return orders): send [] or omit it") = Field(
        default_factory=list, title="Change Item Fees",
        description="Salesforce's fees on a change (57.0). Not supported here: only an empty list is accepted "
                    "(return fees come from return orders).",
    )

    @property
    def why(self) -> str | None:
        return self.reason or self.reason_for_change_text


class SubmitCancelInput(ActionModel):
    """Submit Cancel Input: order items and the unfulfilled quantities to cancel."""

    change_items: list[ChangeItem] = Field(min_length=1, max_length=MAX_ITEMS, title="Change Items", description="What to cancel.")


class SubmitReturnInput(ActionModel):
    """Submit Return Input: order items and the fulfilled quantities to return."""

    change_items: list[ChangeItem] = Field(min_length=1, max_length=MAX_ITEMS, title="Change Items", description="Fulfilled units to return.")


class ChangeOrderOutput(ActionModel):
    change_order_id: str
    total_amount: Decimal
    total_tax_amount: Decimal
    excess_funds_amount: Decimal = Field(
        default=ZERO, description="What the order now holds beyond what it charges (see order_excess_funds)."
    )


class CreateCreditMemoInput(ActionModel):
    """Create Credit Memo Input: the Cancel/Return change orders to credit."""

    change_order_ids: list[RecordId] = Field(
        min_length=1, max_length=MAX_ITEMS, title="Change Order Ids", description="Cancel or Return change orders of this order, not used before (801...)."
    )


class CreateCreditMemoOutput(ActionModel):
    credit_memo_id: str
    total_amount: Decimal


class CreateInvoiceInput(ActionModel):
    """Create Invoice from Change Orders Input: the Fee change orders to invoice."""

    change_order_ids: list[RecordId] = Field(
        min_length=1, max_length=MAX_ITEMS, title="Change Order Ids", description="Fee change orders of this order, not used before (801...)."
    )


class CreateInvoiceOutput(ActionModel):
    invoice_id: str
    total_amount: Decimal


class InvoiceFromChangeOrdersInput(ActionModel):
    """Create Invoice From Change Orders Input (56.0): Fee change orders of one order summary, for one invoice."""

    change_order_ids: list[RecordId] = Field(
        min_length=1, max_length=MAX_ITEMS, title="Change Order Ids",
        description="Fee change orders of this order summary, not used before (801...).",
    )
    order_summary_id: RecordId = Field(title="Order Summary Id", description="The order summary (1Os...).")


class CreateMultipleInvoicesInput(ActionModel):
    """Create Multiple Invoices from Change Orders Input (56.0): one invoice per entry."""

    invoices_from_change_orders: list[InvoiceFromChangeOrdersInput] = Field(
        min_length=1, max_length=MAX_ITEMS, title="Invoices From Change Orders",
        description="Each entry makes one invoice of its change orders; entries may name different order summaries.",
    )


def locked_item_of_order(session: Session, order: OrderSummary, order_item_summary_id: str) -> OrderItemSummary:
    item = session.exec(select(OrderItemSummary).where(OrderItemSummary.id == order_item_summary_id)
                        .with_for_update()).first()
    if item is None:
        raise NotFoundError(f"OrderItemSummary {order_item_summary_id} does not exist")
    if item.order_summary_id != order.id:
        raise InvalidInputError(f"order item {item.id} belongs to another order summary")
    return item


def line_total(item: OrderItemSummary) -> Decimal:
    return quantize(item.unit_price * item.quantity_ordered, item.currency_iso_code, strict=False)


def new_change_order(session: Session, order: OrderSummary, change_type: ChangeOrderType, *, reason: str | None,
                     operation_id: str | None, return_order_id: str | None = None) -> ChangeOrder:
    """A change order (its items follow); ``om.change-order.created`` leaves on commit."""
    change_order = ChangeOrder(
        id=new_id("ChangeOrder"), order_summary_id=order.id, type=change_type, reason=reason,
        currency_iso_code=order.currency_iso_code, background_operation_id=operation_id,
    )
    session.add(change_order)
    session.flush()
    announce(session, lambda: change_order_created(change_order, return_order_id=return_order_id))
    return change_order


def add_change_item(session: Session, change_order: ChangeOrder, item: OrderItemSummary, quantity: Decimal,
                    amount: Decimal, tax: Decimal) -> None:
    change_order.total_amount += amount
    change_order.total_tax_amount += tax
    session.add_all([item, change_order, ChangeOrderItem(
        id=new_id("ChangeOrderItem"), change_order_id=change_order.id, order_item_summary_id=item.id, name=item.name,
        quantity=quantity, amount=amount, tax_amount=tax, currency_iso_code=item.currency_iso_code,
    )])


def credit_returned_units(session: Session, change_order: ChangeOrder, item: OrderItemSummary, quantity: Decimal) -> None:
    """Credit ``quantity`` returned units at what their fulfilment invoiced (positions from
    the line's end) and count them returned."""
    amount = share_from_end(line_total(item), item.quantity_ordered, item.quantity_returned, quantity, item.currency_iso_code)
    tax = share_from_end(item.total_tax_amount, item.quantity_ordered, item.quantity_returned, quantity, item.currency_iso_code)
    item.quantity_returned += quantity
    add_change_item(session, change_order, item, quantity, amount, tax)


def order_excess_funds(session: Session, order: OrderSummary) -> Decimal:
    """Money held (captured, pending captures included, less refunds) beyond what the order
    still charges (its items less Cancel/Return credit, plus fees) and beyond open credit
    memos: zero when a cancel came before capture, the freed money when it came after."""
    summaries = order_payment_summaries(session, order.id)
    held = sum((s.captured_amount + s.pending_capture_amount - s.refunded_amount - s.pending_refund_amount
                for s in summaries), ZERO)
    items = session.exec(select(OrderItemSummary).where(OrderItemSummary.order_summary_id == order.id))
    charged = sum((line_total(item) + item.total_tax_amount for item in items), ZERO)
    changes = sum((c.total_amount + c.total_tax_amount
                   for c in session.exec(select(ChangeOrder).where(ChangeOrder.order_summary_id == order.id))), ZERO)
    memos = sum((m.balance for m in session.exec(select(CreditMemo).where(CreditMemo.order_summary_id == order.id))), ZERO)
    return excess_funds(held=held, amount_due=charged - changes, open_credit=memos)


def change_order_output(session: Session, change_order: ChangeOrder) -> ChangeOrderOutput:
    order = session.get(OrderSummary, change_order.order_summary_id)
    return ChangeOrderOutput(change_order_id=change_order.id, total_amount=change_order.total_amount,
                             total_tax_amount=change_order.total_tax_amount,
                             excess_funds_amount=order_excess_funds(session, order))


def items_of(session: Session, change_order: ChangeOrder) -> list[ChangeOrderItem]:
    return list(session.exec(select(ChangeOrderItem).where(ChangeOrderItem.change_order_id == change_order.id)
                             .order_by(col(ChangeOrderItem.id))))


def publish_change_order(change_order: ChangeOrder, items: list[ChangeOrderItem]) -> None:
    """The run page's account of a change order: its items and totals."""
    currency = change_order.currency_iso_code
    publish(record="change-order", record_id=change_order.id, title=f"{change_order.type} change order",
            rows=[{"Item": i.name, "Quantity": i.quantity, "Amount": money(i.amount, currency),
                   "Tax": money(i.tax_amount, currency)} for i in items],
            summary=f"- {change_order.type} change order {link('ChangeOrder', change_order.id)} of order summary "
                    f"{link('OrderSummary', change_order.order_summary_id)}: "
                    f"**{money(change_order.total_amount, currency)}** + tax {money(change_order.total_tax_amount, currency)}")


def publish_billing_document(record: str, object_name: str, document, lines) -> None:
    """The run page's account of a credit memo or invoice: its lines and totals."""
    currency = document.currency_iso_code
    publish(record=record, record_id=document.id, title=object_name,
            rows=[{"Line": line.name, "Charge": money(line.charge_amount, currency), "Tax": money(line.tax_amount, currency)}
                  for line in lines],
            summary=f"- {object_name} {link(object_name, document.id)} of order summary "
                    f"{link('OrderSummary', document.order_summary_id)}: total **{money(document.total_amount, currency)}**, "
                    f"balance {money(document.balance, currency)}")


def _check_distinct(ids: list[str], what: str) -> None:
    if len(set(ids)) != len(ids):
        raise InvalidInputError(f"{what} names the same record twice")


def submit_cancel_items(
    *, session: Session, order_summary_id: str, request: SubmitCancelInput, operation_id: str | None = None
) -> ChangeOrder:
    """Cancel quantities of unfulfilled items and record the Cancel change order. Within an
    operation (a flow run) it happens once: a re-run gets the change order it made."""
    order = lock_order_summary(session, order_summary_id)
    if operation_id and (done := made_by(session, ChangeOrder, operation_id, type=ChangeOrderType.CANCEL)):
        announce(session, lambda: change_order_created(done))  # told again: the same event id
        return done
    _check_distinct([item.order_item_summary_id for item in request.change_items], "changeItems")
    change_order = new_change_order(session, order, ChangeOrderType.CANCEL, reason=request.change_items[0].why,
                                    operation_id=operation_id)
    for change in request.change_items:
        item = locked_item_of_order(session, order, change.order_item_summary_id)
        check_quantity(change.quantity, item.available_to_cancel, "cancel")
        # cancelled units are priced from the line's start (domain/changes.py)
        amount = share_of_line(line_total(item), item.quantity_ordered, item.quantity_canceled, change.quantity,
                               item.currency_iso_code)
        tax = share_of_line(item.total_tax_amount, item.quantity_ordered, item.quantity_canceled, change.quantity,
                            item.currency_iso_code)
        item.quantity_canceled += change.quantity
        add_change_item(session, change_order, item, change.quantity, amount, tax)
    session.flush()
    return change_order


def submit_return_items(
    *, session: Session, order_summary_id: str, request: SubmitReturnInput, operation_id: str | None = None
) -> ChangeOrder:
    """Return fulfilled units at once (no return order) and record the Return change order.
    Within an operation it happens once."""
    order = lock_order_summary(session, order_summary_id)
    if operation_id and (done := made_by(session, ChangeOrder, operation_id, type=ChangeOrderType.RETURN)):
        announce(session, lambda: change_order_created(done))
        return done
    _check_distinct([item.order_item_summary_id for item in request.change_items], "changeItems")
    change_order = new_change_order(session, order, ChangeOrderType.RETURN, reason=request.change_items[0].why,
                                    operation_id=operation_id)
    for change in request.change_items:
        item = locked_item_of_order(session, order, change.order_item_summary_id)
        check_quantity(change.quantity, item.available_to_return, "return")
        item.quantity_return_initiated += change.quantity
        credit_returned_units(session, change_order, item, change.quantity)
    session.flush()
    return change_order


def create_credit_memo_from_change_orders(
    *, session: Session, order_summary_id: str, request: CreateCreditMemoInput, operation_id: str | None = None
) -> CreditMemo:
    """One credit memo from Cancel/Return change orders, a line per change order item.
    Within an operation it happens once: a re-run gets the credit memo it made."""
    order = lock_order_summary(session, order_summary_id)
    if operation_id and (done := made_by(session, CreditMemo, operation_id)):
        credited = session.exec(select(ChangeOrder).where(ChangeOrder.credit_memo_id == done.id)
                                .order_by(col(ChangeOrder.id))).all()
        announce(session, lambda: credit_memo_created(done, credited))
        return done
    change_orders = _unused_change_orders(session, order, request.change_order_ids)
    for change_order in change_orders:
        if change_order.type == ChangeOrderType.FEE:
            raise InvalidInputError(f"change order {change_order.id} is a fee: invoice it, do not credit it")
    total = sum((c.total_amount + c.total_tax_amount for c in change_orders), ZERO)
    if total <= 0:
        raise InvalidInputError("the change orders credit nothing")
    items = session.exec(select(ChangeOrderItem).where(col(ChangeOrderItem.change_order_id).in_(request.change_order_ids))
                         .order_by(col(ChangeOrderItem.id))).all()
    memo = CreditMemo(
        id=new_id("CreditMemo"), order_summary_id=order.id, currency_iso_code=order.currency_iso_code,
        total_amount=total, total_tax_amount=sum((item.tax_amount for item in items), ZERO),  # its lines' tax
        balance=total, description=f"From change orders {', '.join(request.change_order_ids)}",
        background_operation_id=operation_id,
    )
    session.add(memo)
    session.flush()
    for item in items:
        session.add(CreditMemoLine(
            id=new_id("CreditMemoLine"), credit_memo_id=memo.id, name=item.name, charge_amount=item.amount,
            tax_amount=item.tax_amount,
        ))
    for change_order in change_orders:
        change_order.credit_memo_id = memo.id
        session.add(change_order)
    session.flush()
    announce(session, lambda: credit_memo_created(memo, change_orders))
    return memo


def create_invoice_from_fee_change_orders(
    *, session: Session, order_summary_id: str, request: CreateInvoiceInput, operation_id: str | None = None
) -> Invoice:
    """One invoice from Fee change orders (their negative amounts become what it charges),
    a line per change order item. Within an operation it happens once."""
    order = lock_order_summary(session, order_summary_id)
    if operation_id and (done := made_by(session, Invoice, operation_id)):
        invoiced = session.exec(select(ChangeOrder.id).where(ChangeOrder.invoice_id == done.id)
                                .order_by(col(ChangeOrder.id))).all()
        announce(session, lambda: invoice_created(done, source="ChangeOrders", change_order_ids=invoiced))
        return done
    change_orders = _unused_change_orders(session, order, request.change_order_ids)
    for change_order in change_orders:
        if change_order.type != ChangeOrderType.FEE:
            raise InvalidInputError(f"change order {change_order.id} is a {change_order.type}: credit it, do not invoice it")
    total = -sum((c.total_amount + c.total_tax_amount for c in change_orders), ZERO)
    if total <= 0:
        raise InvalidInputError("the change orders charge nothing")
    items = session.exec(select(ChangeOrderItem).where(col(ChangeOrderItem.change_order_id).in_(request.change_order_ids))
                         .order_by(col(ChangeOrderItem.id))).all()
    invoice = Invoice(
        id=new_id("Invoice"), order_summary_id=order.id, currency_iso_code=order.currency_iso_code, total_amount=total,
        total_tax_amount=-sum((item.tax_amount for item in items), ZERO),  # its lines' tax
        balance=total, description=f"From change orders {', '.join(request.change_order_ids)}",
        background_operation_id=operation_id,
    )
    session.add(invoice)
    session.flush()
    for item in items:
        session.add(InvoiceLine(id=new_id("InvoiceLine"), invoice_id=invoice.id, name=item.name, type="Fee",
                                charge_amount=-item.amount, tax_amount=-item.tax_amount))
    for change_order in change_orders:
        change_order.invoice_id = invoice.id
        session.add(change_order)
    session.flush()
    announce(session, lambda: invoice_created(invoice, source="ChangeOrders", change_order_ids=request.change_order_ids))
    return invoice


def create_invoices_from_change_orders(*, session: Session, request: CreateMultipleInvoicesInput) -> list[Invoice]:
    """One invoice per entry, in the entries' order, all in the caller's one transaction: a
    refused entry (unknown, foreign, used or non-Fee change order) leaves no invoice at all.
    The order summaries are locked first, together and in Id order, so two such requests
    naming the same orders cannot deadlock."""
    entries = request.invoices_from_change_orders
    _check_distinct([i for entry in entries for i in entry.change_order_ids], "changeOrderIds")
    locked = lock_order_summaries(session, [entry.order_summary_id for entry in entries])
    for entry in entries:
        if entry.order_summary_id not in locked:
            raise NotFoundError(f"OrderSummary {entry.order_summary_id} does not exist")
    return [create_invoice_from_fee_change_orders(
        session=session, order_summary_id=entry.order_summary_id,
        request=CreateInvoiceInput(change_order_ids=entry.change_order_ids)) for entry in entries]


def _unused_change_orders(session: Session, order: OrderSummary, change_order_ids: list[str]) -> list[ChangeOrder]:
    _check_distinct(change_order_ids, "changeOrderIds")
    change_orders = []
    for change_order_id in change_order_ids:
        change_order = session.exec(select(ChangeOrder).where(ChangeOrder.id == change_order_id).with_for_update()).first()
        if change_order is None:
            raise NotFoundError(f"ChangeOrder {change_order_id} does not exist")
        if change_order.order_summary_id != order.id:
            raise InvalidInputError(f"change order {change_order_id} belongs to another order summary")
        if change_order.credit_memo_id or change_order.invoice_id:
            raise InvalidInputError(f"change order {change_order_id} was used already")
        change_orders.append(change_order)
    return change_orders


def made_by(session: Session, table, operation_id: str, **where):
    """The record this operation (flow run) made already, if any."""
    statement = select(table).where(table.background_operation_id == operation_id)
    for name, value in where.items():
        statement = statement.where(getattr(table, name) == value)
    return session.exec(statement).first()


@task(name="submit-cancel", persist_result=False)
def submit_cancel(order_summary_id: str, request: SubmitCancelInput, operation_id: str | None = None) -> ChangeOrderOutput:
    """Cancel quantities of order items not yet fulfilled; returns the Cancel change order.

    Example:
        ```python
        from decimal import Decimal
        from prefect import flow
        from actions.change_orders import ChangeItem, SubmitCancelInput, submit_cancel

        @flow
        def cancel_one(order_summary_id: str, order_item_summary_id: str):
            return submit_cancel(order_summary_id, SubmitCancelInput(change_items=[
                ChangeItem(order_item_summary_id=order_item_summary_id, quantity=Decimal(1))]))
        ```
    """
    with session_scope() as session:
        change_order = submit_cancel_items(session=session, order_summary_id=order_summary_id, request=request,
                                           operation_id=operation_id)
        output = change_order_output(session, change_order)
        items = items_of(session, change_order)
    publish_change_order(change_order, items)
    get_run_logger().info("change order %s cancels %s + tax %s", output.change_order_id, output.total_amount,
                          output.total_tax_amount)
    return output


@task(name="create-credit-memo", persist_result=False)
def create_credit_memo(
    order_summary_id: str, request: CreateCreditMemoInput, operation_id: str | None = None
) -> CreateCreditMemoOutput:
    """Create one credit memo from Cancel/Return change orders (each usable once).

    Example:
        ```python
        from prefect import flow
        from actions.change_orders import CreateCreditMemoInput, create_credit_memo

        @flow
        def credit(order_summary_id: str, change_order_id: str):
            return create_credit_memo(order_summary_id, CreateCreditMemoInput(change_order_ids=[change_order_id]))
        ```
    """
    with session_scope() as session:
        memo = create_credit_memo_from_change_orders(session=session, order_summary_id=order_summary_id, request=request,
                                                     operation_id=operation_id)
        output = CreateCreditMemoOutput(credit_memo_id=memo.id, total_amount=memo.total_amount)
        lines = session.exec(select(CreditMemoLine).where(CreditMemoLine.credit_memo_id == memo.id)
                             .order_by(col(CreditMemoLine.id))).all()
    publish_billing_document("credit-memo", "CreditMemo", memo, lines)
    get_run_logger().info("credit memo %s of %s", output.credit_memo_id, output.total_amount)
    return output


@task(name="submit-return", persist_result=False)
def submit_return(order_summary_id: str, request: SubmitReturnInput, operation_id: str | None = None) -> ChangeOrderOutput:
    """Return fulfilled units without a return order; returns the Return change order.

    Example:
        ```python
        from decimal import Decimal
        from prefect import flow
        from actions.change_orders import ChangeItem, SubmitReturnInput, submit_return

        @flow
        def return_one(order_summary_id: str, order_item_summary_id: str):
            return submit_return(order_summary_id, SubmitReturnInput(change_items=[
                ChangeItem(order_item_summary_id=order_item_summary_id, quantity=Decimal(1))]))
        ```
    """
    with session_scope() as session:
        change_order = submit_return_items(session=session, order_summary_id=order_summary_id, request=request,
                                           operation_id=operation_id)
        output = change_order_output(session, change_order)
        items = items_of(session, change_order)
    publish_change_order(change_order, items)
    get_run_logger().info("change order %s returns %s + tax %s", output.change_order_id, output.total_amount,
                          output.total_tax_amount)
    return output


@task(name="create-invoice-from-change-orders", persist_result=False)
def create_invoice(order_summary_id: str, request: CreateInvoiceInput, operation_id: str | None = None) -> CreateInvoiceOutput:
    """Create one invoice from Fee change orders (e.g. a return fee), each usable once.

    Example:
        ```python
        from prefect import flow
        from actions.change_orders import CreateInvoiceInput, create_invoice

        @flow
        def invoice_fee(order_summary_id: str, fee_change_order_id: str):
            return create_invoice(order_summary_id, CreateInvoiceInput(change_order_ids=[fee_change_order_id]))
        ```
    """
    with session_scope() as session:
        invoice = create_invoice_from_fee_change_orders(session=session, order_summary_id=order_summary_id,
                                                        request=request, operation_id=operation_id)
        output = CreateInvoiceOutput(invoice_id=invoice.id, total_amount=invoice.total_amount)
        lines = session.exec(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id)
                             .order_by(col(InvoiceLine.id))).all()
    publish_billing_document("invoice", "Invoice", invoice, lines)
    get_run_logger().info("invoice %s of %s", output.invoice_id, output.total_amount)
    return output
