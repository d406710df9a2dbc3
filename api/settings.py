"""Configuration of the REST facade (environment variables prefixed OM_)."""

import functools

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    """Tokens, TLS and deployment names of the facade."""

    model_config = SettingsConfigDict(env_prefix="OM_", extra="ignore")

    api_tokens: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Bearer tokens and their permissions, as JSON: {"<token>": ["refund"]}.',
    )
    api_token: SecretStr | None = Field(
        default=None, description="A single bearer token with every permission (the embedded default's)."
    )
    ensure_refunds_deployment: str = Field(
        default="ensure-refunds-async/ensure-refunds-async",
        description="Deployment that carries out Ensure Refunds Async (flow name/deployment name).",
    )
    ensure_funds_deployment: str = Field(
        default="ensure-funds-async/ensure-funds-async",
        description="Deployment that carries out Ensure Funds Async (flow name/deployment name).",
    )

    operation_deployments: list[str] = Field(
        default_factory=lambda: ["ensure-refunds-async/ensure-refunds-async", "ensure-funds-async/ensure-funds-async",
                                 "run-composition/run-composition", "refund-payment/refund-payment",
                                 "send-payment-refund/send-payment-refund",
                                 "record-refund-reversal/record-refund-reversal"],
        description="Deployments whose flow runs can be read as BackgroundOperation records.",
    )

    public_docs: bool = Field(
        default=False,
        description="Serve /docs and /openapi.json to anyone; by default they need a bearer token like every route.",
    )
    max_body_bytes: int = Field(
        default=1_000_000, gt=0,
        description="Largest request body accepted; a larger one is refused with 413 before it is read in full.",
    )

    def permissions_for(self, token: str) -> set[str] | None:
        """The token's permissions, or None if the token is unknown."""
        if self.api_token is not None and secrets_equal(token, self.api_token.get_secret_value()):
            return {"*"}
        for known, permissions in self.api_tokens.items():
            if secrets_equal(token, known):
                return set(permissions)
        return None


def secrets_equal(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


@functools.cache
def get_api_settings() -> ApiSettings:
    return ApiSettings()
