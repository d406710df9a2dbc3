"""Submit Cancel and Create Credit Memo (issue 3): order changes and the credit they give.

* Submit Cancel takes quantities off order items that are not fulfilled yet and records
  a Cancel change order carrying the items' share of amount and tax (domain/changes.py).
  Cancelling before capture needs no refund; after capture its credit memo is refunded
  by Ensure Refunds.
* Create Credit Memo turns Cancel/Return change orders into one credit memo, a line per
  change order item; a change order is used once.

Both run in one transaction under the order summary's lock: refused input writes nothing.
"""

from __future__ import annotations

from decimal import Decimal

from prefect import get_run_logger, task
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema
from sqlmodel import Session, col, select

from actions.fields import ActionModel, Quantity, RecordId, drop_default
from db.engine import session_scope
from db.ids import new_id
from db.ledger import lock_order_summary
from db.models import (
    ChangeOrder, ChangeOrderItem, ChangeOrderType, CreditMemo, CreditMemoLine, OrderItemSummary,
)
from domain.changes import check_quantity, share_of_line
from domain.errors import InvalidInputError, NotFoundError
from domain.money import ZERO, quantize


class ChangeItem(ActionModel):
    """A quantity of one order item to change."""

    order_item_summary_id: RecordId = Field(title="Order Item Summary Id", description="The order item (10u...).")
    quantity: Quantity = Field(title="Quantity", description="How many units to change (> 0, at most 4 decimals).")
    reason: str | SkipJsonSchema[None] = Field(
        default=None, max_length=255, title="Reason", description="Why, for the record.", json_schema_extra=drop_default
    )


class SubmitCancelInput(ActionModel):
    change_items: list[ChangeItem] = Field(min_length=1, title="Change Items", description="What to cancel.")


class ChangeOrderOutput(ActionModel):
    change_order_id: str
    total_amount: Decimal
    total_tax_amount: Decimal


class CreateCreditMemoInput(ActionModel):
    change_order_ids: list[RecordId] = Field(
        min_length=1, title="Change Order Ids", description="Cancel or Return change orders of this order, not used before (801...)."
    )


class CreateCreditMemoOutput(ActionModel):
    credit_memo_id: str
    total_amount: Decimal


def submit_cancel_items(
    *, session: Session, order_summary_id: str, request: SubmitCancelInput, operation_id: str | None = None
) -> ChangeOrder:
    """Cancel quantities of unfulfilled items and record the Cancel change order. Within an
    operation (a flow run) it happens once: a re-run gets the change order it made."""
    order = lock_order_summary(session, order_summary_id)
    if operation_id and (done := _made_by(session, ChangeOrder, operation_id)):
        return done
    ids = [item.order_item_summary_id for item in request.change_items]
    if len(set(ids)) != len(ids):
        raise InvalidInputError("changeItems names the same order item twice")
    change_order = ChangeOrder(
        id=new_id("ChangeOrder"), order_summary_id=order.id, type=ChangeOrderType.CANCEL,
        reason=request.change_items[0].reason, currency_iso_code=order.currency_iso_code,
        background_operation_id=operation_id,
    )
    session.add(change_order)
    session.flush()
    for change in request.change_items:
        item = session.exec(select(OrderItemSummary).where(OrderItemSummary.id == change.order_item_summary_id)
                            .with_for_update()).first()
        if item is None:
            raise NotFoundError(f"OrderItemSummary {change.order_item_summary_id} does not exist")
        if item.order_summary_id != order.id:
            raise InvalidInputError(f"order item {item.id} belongs to another order summary")
        check_quantity(change.quantity, item.available_to_cancel, "cancel")
        already = item.quantity_canceled + item.quantity_return_initiated
        line_total = quantize(item.unit_price * item.quantity_ordered, item.currency_iso_code, strict=False)
        amount = share_of_line(line_total, item.quantity_ordered, already, change.quantity, item.currency_iso_code)
        tax = share_of_line(item.total_tax_amount, item.quantity_ordered, already, change.quantity, item.currency_iso_code)
        item.quantity_canceled += change.quantity
        change_order.total_amount += amount
        change_order.total_tax_amount += tax
        session.add_all([item, ChangeOrderItem(
            id=new_id("ChangeOrderItem"), change_order_id=change_order.id, order_item_summary_id=item.id, name=item.name,
            quantity=change.quantity, amount=amount, tax_amount=tax, currency_iso_code=item.currency_iso_code,
        )])
    session.add(change_order)
    session.flush()
    return change_order


def create_credit_memo_from_change_orders(
    *, session: Session, order_summary_id: str, request: CreateCreditMemoInput, operation_id: str | None = None
) -> CreditMemo:
    """One credit memo from Cancel/Return change orders, a line per change order item.
    Within an operation it happens once: a re-run gets the credit memo it made."""
    order = lock_order_summary(session, order_summary_id)
    if operation_id and (done := _made_by(session, CreditMemo, operation_id)):
        return done
    if len(set(request.change_order_ids)) != len(request.change_order_ids):
        raise InvalidInputError("changeOrderIds names the same change order twice")
    change_orders = []
    for change_order_id in request.change_order_ids:
        change_order = session.exec(select(ChangeOrder).where(ChangeOrder.id == change_order_id).with_for_update()).first()
        if change_order is None:
            raise NotFoundError(f"ChangeOrder {change_order_id} does not exist")
        if change_order.order_summary_id != order.id:
            raise InvalidInputError(f"change order {change_order_id} belongs to another order summary")
        if change_order.credit_memo_id or change_order.invoice_id:
            raise InvalidInputError(f"change order {change_order_id} was used already")
        if change_order.type == ChangeOrderType.FEE:
            raise InvalidInputError(f"change order {change_order_id} is a fee: invoice it, do not credit it")
        change_orders.append(change_order)
    total = sum((c.total_amount + c.total_tax_amount for c in change_orders), ZERO)
    if total <= 0:
        raise InvalidInputError("the change orders credit nothing")
    memo = CreditMemo(
        id=new_id("CreditMemo"), order_summary_id=order.id, currency_iso_code=order.currency_iso_code,
        total_amount=total, balance=total, description=f"From change orders {', '.join(request.change_order_ids)}",
        background_operation_id=operation_id,
    )
    session.add(memo)
    session.flush()
    items = session.exec(select(ChangeOrderItem).where(col(ChangeOrderItem.change_order_id).in_(request.change_order_ids))
                         .order_by(col(ChangeOrderItem.id)))
    for item in items:
        session.add(CreditMemoLine(
            id=new_id("CreditMemoLine"), credit_memo_id=memo.id, name=item.name, charge_amount=item.amount,
            tax_amount=item.tax_amount,
        ))
    for change_order in change_orders:
        change_order.credit_memo_id = memo.id
        session.add(change_order)
    session.flush()
    return memo


def _made_by(session: Session, table, operation_id: str):
    return session.exec(select(table).where(table.background_operation_id == operation_id)).first()


@task(name="submit-cancel")
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
        output = ChangeOrderOutput(change_order_id=change_order.id, total_amount=change_order.total_amount,
                                   total_tax_amount=change_order.total_tax_amount)
    get_run_logger().info("change order %s cancels %s + tax %s", output.change_order_id, output.total_amount,
                          output.total_tax_amount)
    return output


@task(name="create-credit-memo")
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
    get_run_logger().info("credit memo %s of %s", output.credit_memo_id, output.total_amount)
    return output
