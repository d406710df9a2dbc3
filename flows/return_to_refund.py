"""Return to refund: received returns → credit memo → fee invoice → Ensure Refunds (issue 3).

Each step is a task run in the Prefect UI; the flow run's id is the background operation id.
"""

from prefect import flow
from prefect.runtime import flow_run
from pydantic import Field

from actions.change_orders import CreateCreditMemoInput, CreateInvoiceInput, create_credit_memo, create_invoice
from actions.ensure_refunds import EnsureRefundsInput, EnsureRefundsOutput, ensure_refunds
from actions.fields import ActionModel, RecordId
from actions.returns import ReturnItemsInput, ReturnItemsOutput, flag_unpaid_invoice, return_items


class ReturnToRefundOutput(ActionModel):
    return_items: ReturnItemsOutput
    credit_memo_id: str | None = Field(description="The credit memo of the returned units (none if nothing was returned).")
    fee_invoice_id: str | None = Field(description="The invoice of the return fees, paid from the credit memo.")
    refunds: EnsureRefundsOutput | None = Field(description="What Ensure Refunds did (none without a credit memo).")


@flow(name="return-to-refund", persist_result=False)
def return_to_refund(return_order_id: RecordId, return_items_input: ReturnItemsInput) -> ReturnToRefundOutput:
    """Process received return order lines, credit the returned units, invoice the return
    fees and refund the credit less the fees. A fee the credit does not cover stays on its
    invoice with a ProcessException for a person to collect.

    Each step commits on its own and happens once per flow run: retrying a failed run
    resumes it without returning, crediting or invoicing twice.

    Args:
        return_order_id: Return order whose lines were received (0RO...).
        return_items_input: The lines received (returned, rejected, cancelled) and the fee lines to charge.
    """
    operation_id = str(flow_run.id)
    returned = return_items(return_order_id, return_items_input, operation_id)
    order_summary_id = returned.order_summary_id
    fee_invoice_id = credit_memo_id = refunds = None
    if returned.fee_change_order_id:
        fee_invoice_id = create_invoice(
            order_summary_id, CreateInvoiceInput(change_order_ids=[returned.fee_change_order_id]), operation_id).invoice_id
    if returned.change_order_id and returned.credit_amount > 0:
        credit_memo_id = create_credit_memo(
            order_summary_id, CreateCreditMemoInput(change_order_ids=[returned.change_order_id]), operation_id).credit_memo_id
        refunds = ensure_refunds(order_summary_id, EnsureRefundsInput(
            credit_memo_id=credit_memo_id, invoices_to_pay=[fee_invoice_id] if fee_invoice_id else []), operation_id)
    if fee_invoice_id:
        flag_unpaid_invoice(fee_invoice_id, operation_id)  # a fee the credit did not cover goes to a person
    return ReturnToRefundOutput(return_items=returned, credit_memo_id=credit_memo_id, fee_invoice_id=fee_invoice_id,
                                refunds=refunds)
