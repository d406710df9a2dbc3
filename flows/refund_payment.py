"""Refund a payment (seeds 002, 003): the background operations behind the refunds API.

* ``refund-payment``: for an operator in the Prefect UI, record the refund then send it.
* ``send-payment-refund``: the REST facade records the refund in its own request (so the
  caller gets the refund id and any refusal at once) and starts this to send it.
* ``record-refund-reversal``: the gateway reports that a succeeded refund failed later.
"""

from prefect import flow
from prefect.runtime import flow_run

from actions.fields import RecordId
from actions.payment_refunds import (
    PaymentRefundOutput, RefundPaymentInput, reserve_payment_refund_task, reverse_payment_refund, send_payment_refund,
)


@flow(name="refund-payment", persist_result=True, result_serializer="json")
def refund_payment(refund_payment_input: RefundPaymentInput) -> PaymentRefundOutput:
    """Refund one payment: all that remains, or part of it, within what was captured.

    A re-run of the same flow run sends the refund it recorded instead of recording
    another, asking the gateway first whether it already acted.

    Args:
        refund_payment_input: The payment (charge), the amount and the reason.
    """
    operation_id = str(flow_run.id)
    reserved = reserve_payment_refund_task(refund_payment_input, operation_id)
    resuming = flow_run.run_count > 1
    return send_payment_refund(reserved.id, resuming)


@flow(name="send-payment-refund", persist_result=False)
def send_recorded_payment_refund(refund_id: RecordId) -> PaymentRefundOutput:
    """Send a payment refund the refunds API recorded as PENDING, and record the answer.

    Args:
        refund_id: The refund (0a4...).
    """
    return send_payment_refund(refund_id, flow_run.run_count > 1)


@flow(name="record-refund-reversal", persist_result=False)
def record_refund_reversal(refund_id: RecordId, gateway_message: str = "") -> PaymentRefundOutput:
    """Record that the gateway reversed a succeeded refund: its amount is owed to the customer again.

    Args:
        refund_id: The refund the gateway reports failed (0a4...).
        gateway_message: What the gateway said.
    """
    return reverse_payment_refund(refund_id, gateway_message or None)
