"""Flow Builder's change-order core actions, one deployment each (issue 12): Submit Cancel,
Submit Return, Create Credit Memo and Create Invoice from Change Orders.

Each flow runs its action's task once per flow run: the flow run id is the operation id
the records are keyed by, so a resumed or retried run returns what it made before instead
of making it twice. The deployments enforce their parameter schema, so the Prefect UI's
form and ``create_flow_run_from_deployment`` refuse bad input before any run exists.
"""

from prefect import flow
from prefect.runtime import flow_run

from actions.change_orders import (
    ChangeOrderOutput, CreateCreditMemoInput, CreateCreditMemoOutput, CreateInvoiceInput, CreateInvoiceOutput,
    SubmitCancelInput, SubmitReturnInput, create_credit_memo, create_invoice, submit_cancel, submit_return,
)
from actions.fields import RecordId


@flow(name="submit-cancel", persist_result=True, result_serializer="json")
def submit_cancel_flow(order_summary_id: RecordId, submit_cancel_input: SubmitCancelInput) -> ChangeOrderOutput:
    """Submit Cancel: cancel unfulfilled quantities of order items; makes a Cancel change order.

    Args:
        order_summary_id: The order whose items are cancelled (1Os...).
        submit_cancel_input: The order items and the quantities to cancel.
    """
    return submit_cancel(order_summary_id, submit_cancel_input, str(flow_run.id))


@flow(name="submit-return", persist_result=True, result_serializer="json")
def submit_return_flow(order_summary_id: RecordId, submit_return_input: SubmitReturnInput) -> ChangeOrderOutput:
    """Submit Return: return fulfilled quantities of order items; makes a Return change order.

    Args:
        order_summary_id: The order whose items are returned (1Os...).
        submit_return_input: The order items and the fulfilled quantities to return.
    """
    return submit_return(order_summary_id, submit_return_input, str(flow_run.id))


@flow(name="create-credit-memo", persist_result=True, result_serializer="json")
def create_credit_memo_flow(order_summary_id: RecordId, create_credit_memo_input: CreateCreditMemoInput
                            ) -> CreateCreditMemoOutput:
    """Create Credit Memo: one credit memo from Cancel/Return change orders (each credited once).

    Args:
        order_summary_id: The order the change orders belong to (1Os...).
        create_credit_memo_input: The change orders to credit.
    """
    return create_credit_memo(order_summary_id, create_credit_memo_input, str(flow_run.id))


@flow(name="create-invoice-from-change-orders", persist_result=True, result_serializer="json")
def create_invoice_flow(order_summary_id: RecordId, create_invoice_input: CreateInvoiceInput) -> CreateInvoiceOutput:
    """Create Invoice from Change Orders: one invoice from Fee change orders (e.g. return fees).

    Args:
        order_summary_id: The order the change orders belong to (1Os...).
        create_invoice_input: The Fee change orders to invoice.
    """
    return create_invoice(order_summary_id, create_invoice_input, str(flow_run.id))
