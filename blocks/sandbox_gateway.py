"""Configuration of the scripted sandbox payment gateway."""

from decimal import Decimal, InvalidOperation
from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, field_validator

Outcome = Literal["approve", "decline", "error", "timeout", "unavailable"]


class SandboxGateway(Block):
    """A scripted payment gateway for tests, demos and rehearsals: no money moves.

    A PaymentGateway record whose GatewayProvider is ``Sandbox`` names a document of this
    block in its MerchantCredentialName; refunds through it get the outcome scripted for
    their amount, else the default.

    Example:
        Decline every refund of 13.13 and time out on 66.60:
        ```python
        from blocks import SandboxGateway

        SandboxGateway(
            default_outcome="approve",
            outcomes_by_amount={"13.13": "decline", "66.60": "timeout"},
        ).save("sandbox", overwrite=True)
        ```

        Load a saved configuration (a PaymentGateway's MerchantCredentialName names it):
        ```python
        from blocks import SandboxGateway

        sandbox = SandboxGateway.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "OM Sandbox Gateway"
    _block_type_slug = "om-sandbox-gateway"
    _description = ("Scripted payment gateway (approve, decline, error, timeout, unavailable: a 5xx that did nothing)"
                    " for Order Management tests and demos.")

    default_outcome: Outcome = Field(
        default="approve", description="Outcome of a refund whose amount has no scripted outcome."
    )
    outcomes_by_amount: dict[str, Outcome] = Field(
        default_factory=dict,
        description="Outcome per refund amount, the amount as a decimal string such as '13.13'.",
    )
    latency_seconds: float = Field(
        default=0.0, ge=0, le=60, description="Simulated time the gateway takes to answer, in seconds."
    )
    honour_idempotency_keys: bool = Field(
        default=True,
        description="Replay the first answer for a repeated idempotency key; off, every call refunds anew (like some real gateways).",
    )

    @field_validator("outcomes_by_amount")
    @classmethod
    def _amounts_are_decimals(cls, value: dict[str, str]) -> dict[str, str]:
        for amount in value:
            try:
                finite = Decimal(amount).is_finite()
            except InvalidOperation:
                finite = False
            if not finite:
                raise ValueError(f"'{amount}' is not a decimal amount such as '13.13'")
        return value
