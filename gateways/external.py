"""The adapter for External payments and authorizations: money taken outside the engine.

Salesforce's Payment and PaymentAuthorization have a ``ProcessingMode`` (Object Reference
v67): ``Salesforce`` records move money through their PaymentGateway; ``External`` ones were
taken elsewhere (a till, a marketplace, a bank transfer, an import from another system) and
may name no gateway at all. Like Kill Bill's external payment method plugin, this adapter
stands where a gateway would: it calls nothing and approves at once, with result code
``External`` and a message saying that the money is to be returned (or taken) outside the
engine. The engine still reserves, logs and settles each refund and capture exactly as it
does for a gateway (Pending row with its idempotency key first, a PaymentGatewayLog row,
then the answer), so a crash anywhere is resumed the same way; asking it about a key
(``lookup_*``) gives the same approval, so a resumed run settles what it reserved.
"""

from __future__ import annotations

from gateways.contract import CaptureCommand, GatewayOutcome, GatewayResult, RefundCommand

EXTERNAL_RESULT_CODE = "External"
REFUND_MESSAGE = ("External payment: no gateway was called; the money is to be returned to the customer outside "
                  "the engine")
CAPTURE_MESSAGE = ("External authorization: no gateway was called; the money is to be taken from the customer "
                   "outside the engine")


class ExternalAdapter:
    """Approves every refund and capture without calling anything (see the module docstring).

    Example:
        ```python
        from decimal import Decimal
        from gateways.contract import RefundCommand
        from gateways.external import ExternalAdapter

        result = ExternalAdapter().refund(RefundCommand("om-refund-1", "", Decimal("5.00"), "USD"))
        print(result.outcome, result.result_code)  # Approved External
        ```
    """

    def refund(self, command: RefundCommand) -> GatewayResult:
        return _approved(f"ext_re_{command.idempotency_key}", REFUND_MESSAGE, command)

    def lookup_refund(self, command: RefundCommand) -> GatewayResult | None:
        return self.refund(command)

    def capture(self, command: CaptureCommand) -> GatewayResult:
        return _approved(f"ext_cap_{command.idempotency_key}", CAPTURE_MESSAGE, command)

    def lookup_capture(self, command: CaptureCommand) -> GatewayResult | None:
        return self.capture(command)


def _approved(reference: str, message: str, command: RefundCommand | CaptureCommand) -> GatewayResult:
    request = {"idempotency_key": command.idempotency_key, "amount": str(command.amount), "currency": command.currency,
               "processing_mode": "External"}
    return GatewayResult(
        outcome=GatewayOutcome.APPROVED, gateway_reference=reference[:255], result_code=EXTERNAL_RESULT_CODE,
        message=message, request=request, response={"external": True, "message": message},
    )
