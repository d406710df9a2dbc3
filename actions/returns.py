"""Create Return Order and Return Return Order Items (issue 3, DESIGN.md §4).

* Create Return Order puts fulfilled units on a return order as they are expected back
  (QuantityReturnInitiated grows), and may carry return fees as fee lines.
* Return Return Order Items processes lines once the parcel is received: received units
  are returned (credited) or rejected (given back to the customer, available to return
  again), expected units may be cancelled, and units still expected move to a new split
  line. It answers the Return change order (for Create Credit Memo), the Fee change order
  of the fee lines processed (negative, for Create Invoice from Change Orders) and the
  split lines. A processed line is read-only.

Each runs in one transaction under the order summary's lock: refused input writes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from prefect import get_run_logger, task
from pydantic import Field, WithJsonSchema, model_validator
from pydantic.json_schema import SkipJsonSchema
from sqlmodel import Session, col, select

from actions.change_orders import credit_returned_units, locked_item_of_order, made_by, new_change_order
from actions.artifacts import link, money, publish
from actions.fields import MAX_ITEMS, ShortText, only_empty, ActionModel, MoneyAmount, Quantity, RecordId, drop_default
from db.announcements import announce
from db.engine import session_scope
from db.ids import new_id
from db.ledger import add_process_exception, get_or_raise, lock_order_summary
from db.models import (
    ChangeOrder, ChangeOrderItem, ChangeOrderType, Invoice, OrderItemSummary, ProcessException, ReturnOrder,
    ReturnOrderLineItem, ReturnOrderLineType, ReturnOrderStatus,
)
from db.record_events import return_order_created, return_order_items_returned
from db.types import utcnow
from domain.changes import check_quantity
from domain.errors import InvalidInputError
from domain.money import ZERO, quantize

CountOrZero = Annotated[Decimal, Field(ge=0, decimal_places=4, max_digits=19, allow_inf_nan=False),
                        WithJsonSchema({"type": "number", "minimum": 0})]
"""A quantity that may be zero, at most 4 decimal places."""


FeeAmountType = Literal["AmountWithTax", "AmountWithoutTax", "Percentage", "PercentageGross"]


class ReturnOrderLineItemFeeInput(ActionModel):
    """Return Order Line Item Fee Input (Apex, 56.0): a fee on the units of one returned
    item, made a Fee line of the return order for the same quantity expected.

    The fee's tax follows the returned item's own tax rate (its TotalTaxAmount over its
    total price), there being no tax engine here: ``AmountWithoutTax`` and ``Percentage``
    add tax at that rate; ``AmountWithTax`` and ``PercentageGross`` are split at it."""

    amount: Annotated[Decimal, Field(gt=0, max_digits=19, decimal_places=6, allow_inf_nan=False),
                      WithJsonSchema({"type": "number", "exclusiveMinimum": 0})] = Field(
        title="Amount", description="The fee, or a percentage, as amountType says (> 0).")
    amount_type: FeeAmountType = Field(
        title="Amount Type",
        description="AmountWithTax: the fee with tax; AmountWithoutTax: the fee before tax (tax is added); Percentage: "
                    "a percentage of the item's price and tax for the units returned; PercentageGross: a percentage of "
                    "the item's amount with tax for the units returned. AmountTaxOnly and ProductOnly (65.0) are not "
                    "supported.")
    description: str = Field(min_length=1, max_length=255, title="Description", description="What the fee is for.")
    product2_id: ShortText | SkipJsonSchema[None] = Field(
        default=None, title="Product2 Id", json_schema_extra=drop_default,
        description="Salesforce's fee product (required there). Orders here have no products: kept nowhere.")
    reason: ShortText | SkipJsonSchema[None] = Field(
        default=None, title="Reason", description="Why the fee is charged.", json_schema_extra=drop_default)


class ReturnOrderLineItemInput(ActionModel):
    """Return Order Line Item Input (Apex, 50.0): units of one order item expected back."""

    SINCE: ClassVar[dict[str, str]] = {"returnOrderLineItemFees": "56.0"}

    order_item_summary_id: RecordId = Field(title="Order Item Summary Id", description="The fulfilled order item (10u...).")
    quantity_expected: Quantity = Field(title="Quantity Expected", description="Units expected back (> 0).")
    reason_for_return: ShortText | SkipJsonSchema[None] = Field(
        default=None, title="Reason For Return", description="Why (Salesforce: a value of the Reason picklist).",
        json_schema_extra=drop_default,
    )
    can_reduce_shipping: bool = Field(
        default=False, title="Can Reduce Shipping",
        description="Salesforce's (required there): the return may reduce the shipping charge. Orders here have no "
                    "delivery charges, so it changes nothing.",
    )
    quantity_received: CountOrZero | SkipJsonSchema[None] = Field(
        default=None, title="Quantity Received", json_schema_extra=drop_default,
        description="Salesforce's, informational at creation: units are received with Return Items.",
    )
    return_order_line_item_fees: list[ReturnOrderLineItemFeeInput] = Field(
        default_factory=list, max_length=MAX_ITEMS, title="Return Order Line Item Fees",
        description="Fees on these units (56.0): each becomes a Fee line expecting the same quantity.")


class ReturnOrderFeeInput(ActionModel):
    """A return fee (e.g. restocking), charged when the return is processed."""

    name: str = Field(min_length=1, max_length=255, title="Name", description="What the fee is for.")
    amount: MoneyAmount = Field(title="Amount", description="The fee, tax excluded, in the order's currency (> 0).")
    tax_amount: MoneyAmount = Field(default=0, validate_default=True, title="Tax Amount", description="Tax on the fee.")


class CreateReturnOrderInput(ActionModel):
    """Return Order Input (Connect, 50.0): fulfilled units expected back, and return fees."""

    SINCE: ClassVar[dict[str, str]] = {"returnOrderLifeCycleType": "51.0", "refundInstructionsHint": "65.0"}

    order_summary_id: RecordId = Field(title="Order Summary Id", description="The order the items come from (1Os...).")
    status: Literal["Submitted"] | SkipJsonSchema[None] = Field(
        default=None, title="Status",
        description="Salesforce's ReturnOrder status to create it in (required there); returns are processed from "
                    "Submitted here, the only one accepted.", json_schema_extra=drop_default,
    )
    return_order_life_cycle_type: Literal["Managed"] | SkipJsonSchema[None] = Field(
        default=None, title="Return Order Life Cycle Type",
        description="Salesforce's (51.0, required there): Managed returns make change orders; Unmanaged (tracking "
                    "only) is not supported here.", json_schema_extra=drop_default,
    )
    refund_instructions_hint: str | SkipJsonSchema[None] = Field(
        default=None, max_length=32_000, title="Refund Instructions Hint",
        description="Salesforce's (65.0): a JSON hint for later refunds; kept by Salesforce, ignored here.",
        json_schema_extra=drop_default,
    )
    return_order_line_items: list[ReturnOrderLineItemInput] = Field(
        min_length=1, max_length=MAX_ITEMS, title="Return Order Line Items", description="What is expected back."
    )
    return_order_fees: list[ReturnOrderFeeInput] = Field(
        default_factory=list, max_length=MAX_ITEMS, title="Return Order Fees", description="Fees charged on the return (this engine's extension)."
    )


class CreateReturnOrderOutput(ActionModel):
    return_order_id: str
    return_order_line_item_ids: list[str]
    fee_line_item_ids: list[str]


class ReturnOrderItemInput(ActionModel):
    """Return Order Item Input (Apex, 52.0): what became of one expected line. Salesforce's
    driver is quantityReturned (units accepted and credited); quantityReceived is
    informational there and defaults here to returned + rejected."""

    return_order_line_item_id: RecordId = Field(title="Return Order Line Item Id", description="A product line (0RL...).")
    quantity_received: CountOrZero | SkipJsonSchema[None] = Field(
        default=None, title="Quantity Received", json_schema_extra=drop_default,
        description="Units that arrived (default: returned + rejected).")
    quantity_returned: CountOrZero | SkipJsonSchema[None] = Field(
        default=None, title="Quantity Returned", json_schema_extra=drop_default,
        description="Units accepted and credited (default: received minus rejected).",
    )
    quantity_rejected: CountOrZero = Field(default=0, validate_default=True, title="Quantity Rejected",
                                           description="Received units refused and sent back to the customer.")
    quantity_to_cancel: CountOrZero = Field(default=0, validate_default=True, title="Quantity To Cancel",
                                            description="Expected units that will not come back.")
    reason_for_rejection: ShortText | SkipJsonSchema[None] = Field(
        default=None, title="Reason For Rejection", description="Why units were rejected.",
        json_schema_extra=drop_default,
    )

    @model_validator(mode="after")
    def _some_units_are_accounted_for(self):
        if self.returned < 0:
            raise ValueError("quantityRejected exceeds quantityReceived")
        if self.received + self.quantity_to_cancel <= 0:
            raise ValueError("return, reject or cancel at least some units")
        return self

    @property
    def returned(self) -> Decimal:
        if self.quantity_returned is not None:
            return self.quantity_returned
        return (self.quantity_received or ZERO) - self.quantity_rejected

    @property
    def received(self) -> Decimal:
        """The units this processing accounts for as arrived: returned + rejected (what
        Salesforce's quantityReceived, informational, would say)."""
        return self.returned + self.quantity_rejected


class ReturnOrderItemFeeInput(ActionModel):
    """Return Order Item Fee Input (Apex, 56.0): how much of a fee line to charge now. The
    charge is the line's fee times quantityReturned over its quantity expected; the units
    cancelled are not charged; what is left stays expected on a new fee line."""

    return_order_line_item_id: RecordId = Field(title="Return Order Line Item Id", description="A fee line to charge (0RL...).")
    quantity_returned: Annotated[Decimal, Field(gt=0, decimal_places=4, max_digits=19, allow_inf_nan=False),
                                 WithJsonSchema({"type": "number", "exclusiveMinimum": 0})] | SkipJsonSchema[None] = Field(
        default=None, title="Quantity Returned", json_schema_extra=drop_default,
        description="Units of the fee to charge (> 0; required in Salesforce). Omitted: every unit still expected.")
    quantity_to_cancel: CountOrZero = Field(default=0, validate_default=True, title="Quantity To Cancel",
                                            description="Units of the fee not to charge, ever.")


class ReturnItemsInput(ActionModel):
    """Return Items Input: the received product lines and the fee lines to charge."""

    SINCE: ClassVar[dict[str, str]] = {"returnOrderItemDeliveryCharges": "52.0", "returnOrderItemFees": "56.0"}

    return_order_items: list[ReturnOrderItemInput] = Field(
        default_factory=list, max_length=MAX_ITEMS, title="Return Order Items", description="The product lines to process."
    )
    return_order_item_fees: list[ReturnOrderItemFeeInput] = Field(
        default_factory=list, max_length=MAX_ITEMS, title="Return Order Item Fees", description="The fee lines to charge."
    )
    return_order_item_delivery_charges: only_empty(
            "orders here have no delivery charges to return: send [] or omit it") = Field(
        default_factory=list, title="Return Order Item Delivery Charges",
        description="Salesforce's delivery charges to return (52.0). Orders here have no delivery charges: only an "
                    "empty list is accepted.",
    )

    @model_validator(mode="after")
    def _something_to_process(self):
        if not self.return_order_items and not self.return_order_item_fees:
            raise ValueError("name at least one return order line or fee line")
        return self


class ReturnLineItemSplit(ActionModel):
    """Return Order Item Split Line Output (Apex, 52.0), with the units the new line expects."""

    original_return_order_item_id: str = Field(description="The processed line.")
    new_return_order_item_id: str = Field(description="The new line carrying the units still expected.")
    quantity_expected: Decimal


class ReturnItemsOutput(ActionModel):
    order_summary_id: str
    change_order_id: str | None = Field(description="Return change order of the returned units; for Create Credit Memo.")
    credit_amount: Decimal = Field(default=ZERO, description="What the Return change order credits, tax included.")
    fee_change_order_id: str | None = Field(description="Fee change order (negative); for Create Invoice from Change Orders.")
    fee_amount: Decimal = Field(default=ZERO, description="What the Fee change order charges, tax included (positive).")
    return_line_item_splits: list[ReturnLineItemSplit]


def fee_amounts(fee: ReturnOrderLineItemFeeInput, item: OrderItemSummary, quantity: Decimal) -> tuple[Decimal, Decimal]:
    """(amount before tax, tax) of ``fee`` on ``quantity`` units of ``item``, at the item's
    own tax rate (see ReturnOrderLineItemFeeInput)."""
    currency = item.currency_iso_code
    price = item.unit_price * item.quantity_ordered
    rate = item.total_tax_amount / price if price > 0 else ZERO
    share = quantity / item.quantity_ordered
    if fee.amount_type == "AmountWithoutTax":
        net = quantize(fee.amount, currency)
        return net, quantize(net * rate, currency, strict=False)
    if fee.amount_type == "Percentage":
        percent = fee.amount / 100
        return (quantize(percent * price * share, currency, strict=False),
                quantize(percent * item.total_tax_amount * share, currency, strict=False))
    gross = (quantize(fee.amount, currency) if fee.amount_type == "AmountWithTax" else
             quantize(fee.amount / 100 * (price + item.total_tax_amount) * share, currency, strict=False))
    tax = quantize(gross * rate / (1 + rate), currency, strict=False)
    return gross - tax, tax


def create_return_order_lines(
    *, session: Session, request: CreateReturnOrderInput, operation_id: str | None = None
) -> tuple[ReturnOrder, list, list]:
    """The return order, its product lines (units now return-initiated) and fee lines; the
    one this operation made already, if it made one (a resumed run)."""
    order = lock_order_summary(session, request.order_summary_id)
    if operation_id and (done := made_by(session, ReturnOrder, operation_id)):
        # the lines it made, not the split lines a later Return Return Order Items added
        made = session.exec(select(ReturnOrderLineItem).where(ReturnOrderLineItem.return_order_id == done.id,
                                                              col(ReturnOrderLineItem.split_from_id).is_(None))
                            .order_by(col(ReturnOrderLineItem.created_date), col(ReturnOrderLineItem.id))).all()
        asked = [line.order_item_summary_id for line in request.return_order_line_items]
        lines = sorted((line for line in made if line.type != ReturnOrderLineType.FEE),
                       key=lambda line: asked.index(line.order_item_summary_id) if line.order_item_summary_id in asked
                       else len(asked))
        announce(session, lambda: return_order_created(done, line_count=len(made)))  # told again: the same event id
        return done, lines, [line for line in made if line.type == ReturnOrderLineType.FEE]
    ids = [line.order_item_summary_id for line in request.return_order_line_items]
    if len(set(ids)) != len(ids):
        raise InvalidInputError("returnOrderLineItems names the same order item twice")
    return_order = ReturnOrder(id=new_id("ReturnOrder"), order_summary_id=order.id, currency_iso_code=order.currency_iso_code,
                               background_operation_id=operation_id)
    session.add(return_order)
    session.flush()
    lines, fees = [], []
    for expected in request.return_order_line_items:
        item = locked_item_of_order(session, order, expected.order_item_summary_id)
        check_quantity(expected.quantity_expected, item.available_to_return, "return")
        item.quantity_return_initiated += expected.quantity_expected
        lines.append(ReturnOrderLineItem(
            id=new_id("ReturnOrderLineItem"), return_order_id=return_order.id, order_item_summary_id=item.id,
            name=item.name, quantity_expected=expected.quantity_expected, reason_for_return=expected.reason_for_return,
            currency_iso_code=order.currency_iso_code,
        ))
        session.add(item)
        for fee in expected.return_order_line_item_fees:
            amount, tax = fee_amounts(fee, item, expected.quantity_expected)
            if amount + tax <= 0:
                raise InvalidInputError(f"the fee '{fee.description}' on order item {item.id} comes to nothing")
            fees.append(ReturnOrderLineItem(
                id=new_id("ReturnOrderLineItem"), return_order_id=return_order.id, type=ReturnOrderLineType.FEE,
                name=fee.description, quantity_expected=expected.quantity_expected, fee_amount=amount, fee_tax_amount=tax,
                reason_for_return=fee.reason, currency_iso_code=order.currency_iso_code,
            ))
    for fee in request.return_order_fees:
        amount, tax = quantize(fee.amount, order.currency_iso_code), quantize(fee.tax_amount, order.currency_iso_code)
        if amount <= 0:
            raise InvalidInputError(f"return fee '{fee.name}' must be positive")
        fees.append(ReturnOrderLineItem(
            id=new_id("ReturnOrderLineItem"), return_order_id=return_order.id, type=ReturnOrderLineType.FEE, name=fee.name,
            quantity_expected=Decimal(1), fee_amount=amount, fee_tax_amount=tax, currency_iso_code=order.currency_iso_code,
        ))
    session.add_all(lines + fees)
    session.flush()
    announce(session, lambda: return_order_created(return_order, line_count=len(lines) + len(fees)))
    return return_order, lines, fees


def process_return_items(
    *, session: Session, return_order_id: str, request: ReturnItemsInput, operation_id: str | None = None
) -> ReturnItemsOutput:
    """Process received lines and fee lines (see the module docstring). Within an
    operation it happens once: a re-run answers what the first run did."""
    return_order = get_or_raise(session, ReturnOrder, return_order_id)
    order = lock_order_summary(session, return_order.order_summary_id)
    if operation_id and (done := _processed_by(session, return_order, operation_id)):
        announce(session, lambda: return_order_items_returned(
            return_order, operation_id=operation_id, change_order_id=done.change_order_id,
            fee_change_order_id=done.fee_change_order_id))
        return done
    product_inputs = {i.return_order_line_item_id: i for i in request.return_order_items}
    fee_inputs = {f.return_order_line_item_id: f for f in request.return_order_item_fees}
    fee_ids = [f.return_order_line_item_id for f in request.return_order_item_fees]
    named = [*product_inputs, *fee_ids]
    if len(product_inputs) != len(request.return_order_items) or len(set(named)) != len(named):
        raise InvalidInputError("the request names the same return order line twice")
    lines = {line.id: line for line in session.exec(
        select(ReturnOrderLineItem).where(col(ReturnOrderLineItem.id).in_([*product_inputs, *fee_ids])).with_for_update())}
    for line_id in [*product_inputs, *fee_ids]:
        line = lines.get(line_id)
        if line is None or line.return_order_id != return_order.id:
            raise InvalidInputError(f"return order line {line_id} is not a line of return order {return_order.id}")
        if line.processed_date is not None:
            raise InvalidInputError(f"return order line {line_id} was processed already")
        wanted = ReturnOrderLineType.ORDER_PRODUCT if line_id in product_inputs else ReturnOrderLineType.FEE
        if line.type != wanted:
            raise InvalidInputError(f"return order line {line_id} is a {line.type} line, not a {wanted} line")

    now = utcnow()
    returns, splits = None, []
    for line_id, received in product_inputs.items():
        line = lines[line_id]
        done = received.received + received.quantity_to_cancel
        if done > line.quantity_expected:
            raise InvalidInputError(f"line {line_id}: {received.received} received + {received.quantity_to_cancel} "
                                    f"cancelled exceed the {line.quantity_expected} expected")
        item = locked_item_of_order(session, order, line.order_item_summary_id)
        item.quantity_return_initiated -= received.quantity_rejected + received.quantity_to_cancel
        if received.returned > 0:
            returns = returns or new_change_order(session, order, ChangeOrderType.RETURN, reason=line.reason_for_return,
                                                  operation_id=operation_id, return_order_id=return_order.id)
            credit_returned_units(session, returns, item, received.returned)
            line.change_order_id = returns.id
        session.add(item)
        if (remaining := line.quantity_expected - done) > 0:
            split = ReturnOrderLineItem(
                id=new_id("ReturnOrderLineItem"), return_order_id=return_order.id, order_item_summary_id=item.id,
                name=line.name, quantity_expected=remaining, reason_for_return=line.reason_for_return,
                currency_iso_code=line.currency_iso_code, split_from_id=line.id,
            )
            session.add(split)
            splits.append(ReturnLineItemSplit(original_return_order_item_id=line.id, new_return_order_item_id=split.id,
                                              quantity_expected=remaining))
        line.quantity_expected = done
        line.quantity_received, line.quantity_returned = received.received, received.returned
        line.quantity_rejected, line.quantity_canceled = received.quantity_rejected, received.quantity_to_cancel
        line.reason_for_rejection = received.reason_for_rejection
        _mark_processed(session, line, now, operation_id)

    fees = None
    for line_id in fee_ids:
        line, asked = lines[line_id], fee_inputs[line_id]
        charged = asked.quantity_returned if asked.quantity_returned is not None else line.quantity_expected - asked.quantity_to_cancel
        if charged <= 0 or charged + asked.quantity_to_cancel > line.quantity_expected:
            raise InvalidInputError(f"fee line {line_id}: {charged} returned + {asked.quantity_to_cancel} cancelled must "
                                    f"be more than 0 and at most the {line.quantity_expected} expected")
        amount, tax = _share(line, charged)
        if (remaining := line.quantity_expected - charged - asked.quantity_to_cancel) > 0:
            # what is not charged stays expected, to the cent when nothing is cancelled
            left_amount, left_tax = line.fee_amount - amount, line.fee_tax_amount - tax
            if asked.quantity_to_cancel > 0:
                share_amount, share_tax = _share(line, remaining)
                left_amount, left_tax = min(share_amount, left_amount), min(share_tax, left_tax)
            split = ReturnOrderLineItem(
                id=new_id("ReturnOrderLineItem"), return_order_id=return_order.id, type=ReturnOrderLineType.FEE,
                name=line.name, quantity_expected=remaining, fee_amount=left_amount, fee_tax_amount=left_tax,
                reason_for_return=line.reason_for_return, currency_iso_code=line.currency_iso_code, split_from_id=line.id)
            session.add(split)
            splits.append(ReturnLineItemSplit(original_return_order_item_id=line.id, new_return_order_item_id=split.id,
                                              quantity_expected=remaining))
        if amount or tax:  # a share that rounds to nothing charges nothing (no empty change order)
            fees = fees or new_change_order(session, order, ChangeOrderType.FEE, reason="Return fee",
                                            operation_id=operation_id, return_order_id=return_order.id)
            fees.total_amount -= amount
            fees.total_tax_amount -= tax
            session.add(ChangeOrderItem(id=new_id("ChangeOrderItem"), change_order_id=fees.id, name=line.name,
                                        quantity=charged, amount=-amount, tax_amount=-tax,
                                        currency_iso_code=line.currency_iso_code))
            line.change_order_id = fees.id
            session.add(fees)
        line.quantity_expected = charged + asked.quantity_to_cancel
        line.quantity_received = line.quantity_returned = charged
        line.quantity_canceled = asked.quantity_to_cancel
        line.fee_amount, line.fee_tax_amount = amount, tax
        _mark_processed(session, line, now, operation_id)

    session.flush()
    if not session.exec(select(ReturnOrderLineItem.id).where(ReturnOrderLineItem.return_order_id == return_order.id,
                                                             col(ReturnOrderLineItem.processed_date).is_(None))).first():
        return_order.status = ReturnOrderStatus.CLOSED
        session.add(return_order)
        session.flush()
    announce(session, lambda: return_order_items_returned(
        return_order, operation_id=operation_id, change_order_id=returns and returns.id,
        fee_change_order_id=fees and fees.id))
    return _output(order.id, returns, fees, splits)


def _share(line: ReturnOrderLineItem, quantity: Decimal) -> tuple[Decimal, Decimal]:
    """The fee and tax of ``quantity`` of a fee line's expected units (fee x quantity / expected)."""
    if quantity == line.quantity_expected:
        return line.fee_amount, line.fee_tax_amount
    currency = line.currency_iso_code
    return (quantize(line.fee_amount * quantity / line.quantity_expected, currency, strict=False),
            quantize(line.fee_tax_amount * quantity / line.quantity_expected, currency, strict=False))


def _output(order_summary_id: str, returns: ChangeOrder | None, fees: ChangeOrder | None, splits) -> ReturnItemsOutput:
    return ReturnItemsOutput(
        order_summary_id=order_summary_id, return_line_item_splits=splits,
        change_order_id=returns and returns.id, credit_amount=returns.total_amount + returns.total_tax_amount if returns else ZERO,
        fee_change_order_id=fees and fees.id, fee_amount=-(fees.total_amount + fees.total_tax_amount) if fees else ZERO,
    )


def _mark_processed(session: Session, line: ReturnOrderLineItem, now, operation_id: str | None) -> None:
    line.processed_date = now
    line.background_operation_id = operation_id
    session.add(line)


def _processed_by(session: Session, return_order: ReturnOrder, operation_id: str) -> ReturnItemsOutput | None:
    processed = list(session.exec(select(ReturnOrderLineItem).where(
        ReturnOrderLineItem.return_order_id == return_order.id, ReturnOrderLineItem.background_operation_id == operation_id)))
    if not processed:
        return None
    returns = made_by(session, ChangeOrder, operation_id, type=ChangeOrderType.RETURN)
    fees = made_by(session, ChangeOrder, operation_id, type=ChangeOrderType.FEE)
    splits = session.exec(select(ReturnOrderLineItem).where(
        col(ReturnOrderLineItem.split_from_id).in_([line.id for line in processed])).order_by(col(ReturnOrderLineItem.created_date)))
    return _output(return_order.order_summary_id, returns, fees, [
        ReturnLineItemSplit(original_return_order_item_id=s.split_from_id, new_return_order_item_id=s.id,
                            quantity_expected=s.quantity_expected) for s in splits])


@task(name="create-return-order", persist_result=False)
def create_return_order(request: CreateReturnOrderInput, operation_id: str | None = None) -> CreateReturnOrderOutput:
    """Create a return order for fulfilled units expected back, with any return fees.

    Example:
        ```python
        from decimal import Decimal
        from prefect import flow
        from actions.returns import CreateReturnOrderInput, ReturnOrderLineItemInput, create_return_order

        @flow
        def expect_one_back(order_summary_id: str, order_item_summary_id: str):
            return create_return_order(CreateReturnOrderInput(order_summary_id=order_summary_id, return_order_line_items=[
                ReturnOrderLineItemInput(order_item_summary_id=order_item_summary_id, quantity_expected=Decimal(1))]))
        ```
    """
    with session_scope() as session:
        return_order, lines, fees = create_return_order_lines(session=session, request=request, operation_id=operation_id)
        output = CreateReturnOrderOutput(return_order_id=return_order.id, return_order_line_item_ids=[line.id for line in lines],
                                         fee_line_item_ids=[fee.id for fee in fees])
    currency = return_order.currency_iso_code
    publish(record="return-order", record_id=return_order.id, title="Return order",
            rows=[{"Line": line.id, "Item": line.name, "Type": line.type, "Quantity Expected": line.quantity_expected,
                   "Fee": money(line.fee_amount, currency) if line.type == ReturnOrderLineType.FEE else ""}
                  for line in [*lines, *fees]],
            summary=f"- Return order {link('ReturnOrder', return_order.id)} of order summary "
                    f"{link('OrderSummary', return_order.order_summary_id)}: {len(lines)} line(s), {len(fees)} fee(s)")
    get_run_logger().info("return order %s expects %d line(s), %d fee(s)", output.return_order_id,
                          len(output.return_order_line_item_ids), len(output.fee_line_item_ids))
    return output


@task(name="return-return-order-items", persist_result=False)
def return_items(return_order_id: str, request: ReturnItemsInput, operation_id: str | None = None) -> ReturnItemsOutput:
    """Process received return order lines and fee lines into change orders.

    Example:
        ```python
        from decimal import Decimal
        from prefect import flow
        from actions.returns import ReturnItemsInput, ReturnOrderItemInput, return_items

        @flow
        def receive_one(return_order_id: str, line_id: str):
            return return_items(return_order_id, ReturnItemsInput(return_order_items=[
                ReturnOrderItemInput(return_order_line_item_id=line_id, quantity_received=Decimal(1))]))
        ```
    """
    with session_scope() as session:
        output = process_return_items(session=session, return_order_id=return_order_id, request=request,
                                      operation_id=operation_id)
        currency = session.get(ReturnOrder, return_order_id).currency_iso_code
    rows = []
    if output.change_order_id:
        rows.append({"Change Order": output.change_order_id, "Kind": "Return", "Amount": money(output.credit_amount, currency)})
    if output.fee_change_order_id:
        rows.append({"Change Order": output.fee_change_order_id, "Kind": "Fee", "Amount": money(output.fee_amount, currency)})
    rows += [{"Split Line": split.new_return_order_item_id, "Kind": f"split from {split.original_return_order_item_id}",
              "Quantity Expected": split.quantity_expected} for split in output.return_line_item_splits]
    publish(record="return-order-items", record_id=return_order_id, title="Return Return Order Items", rows=rows,
            summary=f"- Return order {link('ReturnOrder', return_order_id)}: credit "
                    f"**{money(output.credit_amount, currency)}**, fees {money(output.fee_amount, currency)}")
    get_run_logger().info("return order %s: change order %s, fee change order %s, %d split line(s)", return_order_id,
                          output.change_order_id, output.fee_change_order_id, len(output.return_line_item_splits))
    return output


def flag_open_balance(*, session: Session, invoice_id: str, operation_id: str | None) -> str | None:
    """File a ProcessException for an invoice left with a balance (a return fee the credit
    did not cover), once per operation; the id of the exception, or None if it is paid."""
    invoice = get_or_raise(session, Invoice, invoice_id)
    if invoice.balance <= 0:
        return None
    filed = session.exec(select(ProcessException).where(ProcessException.attached_to_id == invoice.id,
                                                         ProcessException.background_operation_id == operation_id)).first()
    if filed is None:
        filed = add_process_exception(
            session, attached_to_id=invoice.id, order_summary_id=invoice.order_summary_id, severity="Low",
            message=f"Invoice {invoice.id} keeps {invoice.balance} {invoice.currency_iso_code} to collect",
            description="The return's credit did not cover its fees: collect the rest (e.g. Ensure Funds) or write it off.",
            background_operation_id=operation_id,
        )
        session.flush()
    return filed.id


class FlagOpenBalanceInput(ActionModel):
    """Flag Open Balance takes only the invoice it looks at."""


class FlagOpenBalanceOutput(ActionModel):
    process_exception_id: str | None = Field(
        description="The ProcessException filed for the invoice's open balance; none when it is paid.")


@task(name="flag-open-balance", persist_result=False)
def flag_unpaid_invoice(
    invoice_id: str, request: FlagOpenBalanceInput | None = None, operation_id: str | None = None
) -> FlagOpenBalanceOutput:
    """File a ProcessException for a person when an invoice (e.g. a return fee) stays unpaid.

    Example:
        ```python
        from prefect import flow
        from actions.returns import flag_unpaid_invoice

        @flow
        def check_fee(invoice_id: str):
            return flag_unpaid_invoice(invoice_id)
        ```
    """
    with session_scope() as session:
        exception_id = flag_open_balance(session=session, invoice_id=invoice_id, operation_id=operation_id)
    if exception_id:
        get_run_logger().warning("invoice %s keeps a balance: process exception %s", invoice_id, exception_id)
    return FlagOpenBalanceOutput(process_exception_id=exception_id)
