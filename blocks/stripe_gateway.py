"""Credentials and connection settings of a Stripe account."""

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator


class StripeGateway(Block):
    """A Stripe account that refunds and captures move money through.

    A PaymentGateway record whose GatewayProvider is ``Stripe`` names a document of this
    block in its MerchantCredentialName; its payments carry the Stripe charge (``ch_...``)
    or PaymentIntent (``pi_...``) id in GatewayRefNumber.

    The adapter never lets the Stripe SDK retry on its own: a retry after a lost answer
    is only safe where the gateway replays idempotency keys, and the engine's guarantee
    must not depend on that. An unanswered call is recorded as unknown and settled later
    by looking the refund up (resolve-gateway-outcomes).

    Example:
        Save the account's restricted key (it needs write access to refunds and
        PaymentIntents):
        ```python
        from blocks import StripeGateway

        StripeGateway(api_key="rk_live_...").save("stripe-eu", overwrite=True)
        ```

        Load it (a PaymentGateway's MerchantCredentialName names it):
        ```python
        from blocks import StripeGateway

        stripe_account = StripeGateway.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "OM Stripe Gateway"
    _block_type_slug = "om-stripe-gateway"
    _description = "A Stripe account's secret key and connection settings, for Order Management refunds and captures."

    api_key: SecretStr = Field(
        description="The account's secret or restricted API key (sk_... or rk_...)."
    )
    api_base: str = Field(
        default="https://api.stripe.com",
        description="Base URL of the Stripe API; set it only to reach a Stripe-compatible test double such as localstripe.",
    )
    stripe_account: str | None = Field(
        default=None, description="Connected account id (acct_...) to act for, when the key is a Connect platform's."
    )
    timeout_seconds: float = Field(
        default=30.0, gt=0, le=120,
        description="How long one call may take before its outcome is recorded as unknown and looked up later.",
    )

    @field_validator("api_base")
    @classmethod
    def _is_http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"'{value}' is not an http(s) URL")
        return value.rstrip("/")
