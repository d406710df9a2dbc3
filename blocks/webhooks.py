"""Where refund webhooks go and how they are signed."""

from typing import Literal
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

EventType = Literal["RefundCreated", "RefundUpdated"]


class WebhookSubscription(Block):
    """A subscriber to Refund Created/Updated webhooks.

    Each event is POSTed as JSON to ``url`` with the headers ``OM-Event-Id`` (unique per
    event), ``OM-Event-Type`` and ``OM-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
    "<t>.<body>" under signing_secret>``. The body carries ``eventId`` and the refund's
    ``sequence`` (its revision), so a subscriber drops repeats (same eventId) and stale
    events (a sequence not above the last it applied for that refund). Failed deliveries
    are retried with exponential backoff by the ``deliver-webhooks`` deployment.

    Example:
        Subscribe an endpoint:
        ```python
        from blocks import WebhookSubscription

        WebhookSubscription(url="https://ledger.example/hooks/refunds", signing_secret="whsec_...").save(
            "accounting", overwrite=True)
        ```

        Load it:
        ```python
        from blocks import WebhookSubscription

        subscription = WebhookSubscription.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "OM Webhook Subscription"
    _block_type_slug = "om-webhook-subscription"
    _description = "An endpoint receiving signed Refund Created/Updated webhooks from the Order Management engine."

    url: str = Field(description="The endpoint events are POSTed to: https, or http on the loopback interface.")
    signing_secret: SecretStr = Field(description="Shared secret of the HMAC-SHA256 signature in the OM-Signature header.")
    event_types: list[EventType] = Field(
        default_factory=lambda: ["RefundCreated", "RefundUpdated"], description="Which events to send.")
    max_attempts: int = Field(
        default=20, ge=1, le=50, description="Attempts per event before it is marked Failed (20: about 14 hours).")
    timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="How long to wait for the endpoint's answer.")
    backoff_seconds: float = Field(
        default=30.0, ge=0.01, le=600,
        description="Wait after the first failure; doubled after each next one, at most an hour.")
    active: bool = Field(default=True, description="Switch off to pause deliveries (events keep queueing).")

    @field_validator("url")
    @classmethod
    def _https_or_loopback(cls, url: str) -> str:
        parsed = urlsplit(url)
        if parsed.hostname and (parsed.scheme == "https" or (
                parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost", "::1"))):
            return url
        raise ValueError("webhook URLs must be https (plain http only on the loopback interface)")
