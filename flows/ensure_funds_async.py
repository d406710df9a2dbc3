"""Ensure Funds Async: the background operation behind
``POST .../order-summaries/{id}/async-actions/ensure-funds-async``."""

from prefect import flow
from prefect.runtime import flow_run

from actions.ensure_funds import EnsureFundsInput, EnsureFundsOutput, ensure_funds
from actions.fields import RecordId


@flow(name="ensure-funds-async", log_prints=False, persist_result=True, result_serializer="json")
def ensure_funds_async(order_summary_id: RecordId, ensure_funds_input: EnsureFundsInput) -> EnsureFundsOutput:
    """Pay an invoice's balance from the order's captured balance, then by capturing authorizations.

    The flow run's id is the background operation id the caller got back. Gateway
    declines land in PaymentGatewayLog and ProcessException without failing the run;
    invalid input (including not enough funds) fails it, having changed nothing.

    Args:
        order_summary_id: Order summary the invoice belongs to (1Os...).
        ensure_funds_input: The invoice to pay.
    """
    return ensure_funds(order_summary_id, ensure_funds_input, str(flow_run.id))
