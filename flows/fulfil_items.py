"""Fulfil items: record shipped units and invoice them, as one deployment (issue 12)."""

from prefect import flow
from prefect.runtime import flow_run

from actions.fields import RecordId
from actions.fulfillment import FulfillItemsInput, FulfillItemsOutput, fulfill_items


@flow(name="fulfil-items", persist_result=True, result_serializer="json")
def fulfil_items_flow(order_summary_id: RecordId, fulfill_items_input: FulfillItemsInput) -> FulfillItemsOutput:
    """Fulfil items: record the shipped units and make the invoice that charges them.

    Args:
        order_summary_id: The order whose items shipped (1Os...).
        fulfill_items_input: The order items and the quantities shipped.
    """
    return fulfill_items(order_summary_id, fulfill_items_input, str(flow_run.id))
