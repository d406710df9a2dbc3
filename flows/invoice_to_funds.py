"""Invoice to funds: shipped units → their invoice → Ensure Funds (issue 3).

Each step is a task run in the Prefect UI; the flow run's id is the background operation id.
"""

from prefect import flow
from prefect.runtime import flow_run
from pydantic import Field

from actions.ensure_funds import EnsureFundsInput, EnsureFundsOutput, ensure_funds
from actions.fields import ActionModel, RecordId
from actions.fulfillment import FulfillItemsInput, FulfillItemsOutput, fulfill_items


class InvoiceToFundsOutput(ActionModel):
    invoice: FulfillItemsOutput
    funds: EnsureFundsOutput | None = Field(description="What Ensure Funds did (none for an invoice of 0.00).")


@flow(name="invoice-to-funds", persist_result=False)
def invoice_to_funds(order_summary_id: RecordId, fulfill_items_input: FulfillItemsInput) -> InvoiceToFundsOutput:
    """Record shipped units, invoice them and pay the invoice from captured balance, then
    by capturing authorizations.

    Each step commits on its own and happens once per flow run: retrying a failed run
    resumes it without fulfilling or invoicing twice.

    Args:
        order_summary_id: Order summary whose items shipped (1Os...).
        fulfill_items_input: The items and quantities shipped.
    """
    operation_id = str(flow_run.id)
    invoice = fulfill_items(order_summary_id, fulfill_items_input, operation_id)
    funds = None
    if invoice.total_amount > 0:
        funds = ensure_funds(order_summary_id, EnsureFundsInput(invoice_id=invoice.invoice_id), operation_id)
    return InvoiceToFundsOutput(invoice=invoice, funds=funds)
