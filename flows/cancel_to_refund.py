"""Cancel to refund: cancel order items, credit them, refund the credit (issue 3's composed flows).

Each step is a task run in the Prefect UI; the flow run's id is the background operation id.
"""

from prefect import flow
from prefect.runtime import flow_run
from pydantic import Field

from actions.change_orders import (
    ChangeOrderOutput, CreateCreditMemoInput, SubmitCancelInput, create_credit_memo, submit_cancel,
)
from actions.ensure_refunds import EnsureRefundsInput, EnsureRefundsOutput, ensure_refunds
from actions.fields import ActionModel, RecordId


class CancelToRefundOutput(ActionModel):
    change_order: ChangeOrderOutput
    credit_memo_id: str = Field(description="The credit memo made from the cancel change order.")
    refunds: EnsureRefundsOutput


@flow(name="cancel-to-refund", persist_result=False)
def cancel_to_refund(order_summary_id: RecordId, submit_cancel_input: SubmitCancelInput) -> CancelToRefundOutput:
    """Cancel quantities of unfulfilled items, make a credit memo of the change, refund it.

    Each step commits on its own and happens once per flow run: retrying a failed run
    (e.g. Ensure Refunds refused because nothing was captured yet) resumes it, without
    cancelling or crediting twice.

    Args:
        order_summary_id: Order summary whose items are cancelled (1Os...).
        submit_cancel_input: The items and quantities to cancel.
    """
    operation_id = str(flow_run.id)  # each step happens once per operation, so a retried run resumes
    change_order = submit_cancel(order_summary_id, submit_cancel_input, operation_id)
    memo = create_credit_memo(order_summary_id, CreateCreditMemoInput(change_order_ids=[change_order.change_order_id]),
                              operation_id)
    refunds = ensure_refunds(order_summary_id, EnsureRefundsInput(credit_memo_id=memo.credit_memo_id), operation_id)
    return CancelToRefundOutput(change_order=change_order, credit_memo_id=memo.credit_memo_id, refunds=refunds)
