"""Which payment gateway a PaymentGateway record goes through."""

from enum import StrEnum


class GatewayProvider(StrEnum):
    SANDBOX = "Sandbox"
    STRIPE = "Stripe"
