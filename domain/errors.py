"""One exception hierarchy for the whole engine.

Each error carries a Salesforce-style ``error_code`` so the REST facade can render it
as "Error with Output" without guessing.
"""


class OrderManagementError(Exception):
    """Base class of every error this engine raises on purpose."""

    error_code = "UNKNOWN_EXCEPTION"
    http_status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInputError(OrderManagementError):
    """The request is malformed or violates a business rule; nothing was changed."""

    error_code = "INVALID_INPUT"
    http_status = 400


class RequiredFieldMissingError(InvalidInputError):
    """A field the record needs in this case is missing (Salesforce's REQUIRED_FIELD_MISSING);
    ``fields`` names it (the sObject error body carries them)."""

    error_code = "REQUIRED_FIELD_MISSING"

    def __init__(self, message: str, *, fields: list[str]):
        super().__init__(message)
        self.fields = fields


class NotFoundError(InvalidInputError):
    """A referenced record does not exist."""

    error_code = "INVALID_ID_FIELD"
    http_status = 404


class CurrencyMismatchError(InvalidInputError):
    """Two amounts in different currencies were combined."""

    error_code = "CURRENCY_MISMATCH"


class InsufficientAvailableToRefundError(InvalidInputError):
    """The amount to refund exceeds what the order payment summaries can refund."""

    error_code = "INSUFFICIENT_AVAILABLE_TO_REFUND"


class InvariantViolationError(OrderManagementError):
    """A ledger invariant does not hold; a person must look."""

    error_code = "INVARIANT_VIOLATION"
    http_status = 500


class GatewayError(OrderManagementError):
    """The payment gateway could not be reached or configured."""

    error_code = "GATEWAY_ERROR"
    http_status = 502


class PreviouslyRefundedAmountMismatchError(InvalidInputError):
    """The caller's previouslyRefundedAmount is not what the payment's succeeded refunds
    add up to: another refund happened since the caller looked (seed 003)."""

    error_code = "PREVIOUSLY_REFUNDED_AMOUNT_MISMATCH"
    http_status = 409


class NotRefundableError(InvalidInputError):
    """The payment cannot be refunded now; ``error_code`` says why (domain/refundability.py)."""

    http_status = 400

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.error_code = reason


class RefundAmountOutOfRangeError(InvalidInputError):
    """The amount is outside what the payment can refund now (min..max refundable)."""

    error_code = "INVALID_REFUND_AMOUNT"
