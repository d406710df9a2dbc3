"""Ensure Refunds Async: the background operation behind
``POST .../order-summaries/{id}/async-actions/ensure-refunds-async``."""

from prefect import flow
from prefect.runtime import flow_run

from actions.ensure_refunds import EnsureRefundsInput, EnsureRefundsOutput, ensure_refunds
from actions.fields import RecordId


@flow(name="ensure-refunds-async", log_prints=False, persist_result=True, result_serializer="json")
def ensure_refunds_async(order_summary_id: RecordId, ensure_refunds_input: EnsureRefundsInput) -> EnsureRefundsOutput:
    """Ensure refunds for a credit memo and/or excess funds of one order summary.

    The flow run's id is the background operation id the caller got back. Gateway
    declines land in PaymentGatewayLog and ProcessException without failing the run;
    invalid input fails it with the reason, having changed nothing.

    Args:
        order_summary_id: Order summary whose credit memo or excess funds are refunded (1Os...).
        ensure_refunds_input: Credit memo and/or excess funds, fee invoices to pay first,
            and optional sequences of amounts per order payment summary.
    """
    return ensure_refunds(order_summary_id, ensure_refunds_input, str(flow_run.id))
