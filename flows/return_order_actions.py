"""Flow Builder's return core actions, one deployment each (issue 12): Create Return Order
and Return Return Order Items. Keyed by the flow run id like every action flow, so a
resumed run finds the return order or change orders it made."""

from prefect import flow
from prefect.runtime import flow_run

from actions.fields import RecordId
from actions.returns import (
    CreateReturnOrderInput, CreateReturnOrderOutput, ReturnItemsInput, ReturnItemsOutput, create_return_order,
    return_items,
)


@flow(name="create-return-order", persist_result=True, result_serializer="json")
def create_return_order_flow(create_return_order_input: CreateReturnOrderInput) -> CreateReturnOrderOutput:
    """Create Return Order: fulfilled units expected back, with any return fees.

    Args:
        create_return_order_input: The order, the lines expected back and the return fees.
    """
    return create_return_order(create_return_order_input, str(flow_run.id))


@flow(name="return-return-order-items", persist_result=True, result_serializer="json")
def return_return_order_items_flow(return_order_id: RecordId, return_items_input: ReturnItemsInput) -> ReturnItemsOutput:
    """Return Return Order Items: process received lines into a Return change order (for a
    credit memo) and fee lines into a Fee change order (for an invoice).

    Args:
        return_order_id: The return order whose lines were received (0RO...).
        return_items_input: The received product lines and the fee lines to charge.
    """
    return return_items(return_order_id, return_items_input, str(flow_run.id))
