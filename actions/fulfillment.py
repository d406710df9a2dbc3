"""Fulfil Items: units shipped, and the invoice that charges them (issue 3's "fulfilled and invoiced").

Salesforce fulfils through fulfillment orders and invoices each with its create-invoice
action; this engine keeps no warehouse objects, so one action records the fulfilled
quantities and creates their invoice in one transaction under the order summary's lock.
Each unit is invoiced at its share of the line (positions from the line's end, see
domain/changes.py), so cancels and invoices together make exactly the line. The invoice
is then paid by Ensure Funds (the invoice-to-funds flow does both).
"""

from __future__ import annotations

from decimal import Decimal

from prefect import get_run_logger, task
from pydantic import Field
from sqlmodel import Session, col, select

from actions.change_orders import line_total, locked_item_of_order, made_by, publish_billing_document
from actions.fields import MAX_ITEMS, ActionModel, Quantity, RecordId
from db.announcements import announce
from db.engine import session_scope
from db.ids import new_id
from db.ledger import lock_order_summary
from db.models import Invoice, InvoiceLine
from db.record_events import invoice_created
from domain.changes import check_quantity, share_from_end
from domain.errors import InvalidInputError
from domain.money import ZERO


class FulfillmentItem(ActionModel):
    """Units of one order item shipped."""

    order_item_summary_id: RecordId = Field(title="Order Item Summary Id", description="The order item (10u...).")
    quantity: Quantity = Field(title="Quantity", description="How many units were shipped (> 0, at most 4 decimals).")


class FulfillItemsInput(ActionModel):
    """Fulfill Items Input: the order items and quantities shipped."""

    fulfillment_items: list[FulfillmentItem] = Field(min_length=1, max_length=MAX_ITEMS, title="Fulfillment Items", description="What was shipped.")


class FulfillItemsOutput(ActionModel):
    invoice_id: str
    total_amount: Decimal


def fulfill_and_invoice(
    *, session: Session, order_summary_id: str, request: FulfillItemsInput, operation_id: str | None = None
) -> Invoice:
    """Count the units fulfilled and invoice them. Within an operation it happens once."""
    order = lock_order_summary(session, order_summary_id)
    if operation_id and (done := made_by(session, Invoice, operation_id)):
        announce(session, lambda: invoice_created(done, source="Fulfillment"))  # told again: the same event id
        return done
    ids = [item.order_item_summary_id for item in request.fulfillment_items]
    if len(set(ids)) != len(ids):
        raise InvalidInputError("fulfillmentItems names the same order item twice")
    invoice = Invoice(id=new_id("Invoice"), order_summary_id=order.id, currency_iso_code=order.currency_iso_code,
                      total_amount=ZERO, balance=ZERO, description="Fulfilled items", background_operation_id=operation_id)
    session.add(invoice)
    session.flush()
    for shipped in request.fulfillment_items:
        item = locked_item_of_order(session, order, shipped.order_item_summary_id)
        check_quantity(shipped.quantity, item.available_to_cancel, "fulfill")
        currency = item.currency_iso_code
        amount = share_from_end(line_total(item), item.quantity_ordered, item.quantity_fulfilled, shipped.quantity, currency)
        tax = share_from_end(item.total_tax_amount, item.quantity_ordered, item.quantity_fulfilled, shipped.quantity, currency)
        item.quantity_fulfilled += shipped.quantity
        invoice.total_amount += amount + tax
        invoice.total_tax_amount += tax
        session.add_all([item, InvoiceLine(id=new_id("InvoiceLine"), invoice_id=invoice.id, name=item.name,
                                           charge_amount=amount, tax_amount=tax)])
    # free items (a gift) still ship: their invoice of 0.00 is paid as it stands
    invoice.balance = invoice.total_amount
    session.add(invoice)
    session.flush()
    announce(session, lambda: invoice_created(invoice, source="Fulfillment"))
    return invoice


@task(name="fulfill-items", persist_result=False)
def fulfill_items(order_summary_id: str, request: FulfillItemsInput, operation_id: str | None = None) -> FulfillItemsOutput:
    """Record shipped units and create the invoice that charges them.

    Example:
        ```python
        from decimal import Decimal
        from prefect import flow
        from actions.fulfillment import FulfillItemsInput, FulfillmentItem, fulfill_items

        @flow
        def ship_two(order_summary_id: str, order_item_summary_id: str):
            return fulfill_items(order_summary_id, FulfillItemsInput(fulfillment_items=[
                FulfillmentItem(order_item_summary_id=order_item_summary_id, quantity=Decimal(2))]))
        ```
    """
    with session_scope() as session:
        invoice = fulfill_and_invoice(session=session, order_summary_id=order_summary_id, request=request,
                                      operation_id=operation_id)
        output = FulfillItemsOutput(invoice_id=invoice.id, total_amount=invoice.total_amount)
        lines = session.exec(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id)
                             .order_by(col(InvoiceLine.id))).all()
    publish_billing_document("invoice", "Invoice", invoice, lines)
    get_run_logger().info("invoice %s of %s for fulfilled items", output.invoice_id, output.total_amount)
    return output
