"""Find the adapter for a PaymentGateway record."""

from __future__ import annotations

from db.models import GatewayProvider, PaymentGateway
from domain.errors import GatewayError
from gateways.contract import PaymentGatewayAdapter
from gateways.sandbox import SandboxGatewayAdapter


def adapter_for(gateway: PaymentGateway, *, store_url: str | None = None) -> PaymentGatewayAdapter:
    """Build the adapter for ``gateway`` from the block its MerchantCredentialName names."""
    if gateway.gateway_provider == GatewayProvider.SANDBOX:
        from blocks.sandbox_gateway import SandboxGateway

        config = SandboxGateway()
        if gateway.merchant_credential_name:
            try:
                config = SandboxGateway.load(gateway.merchant_credential_name)
            except Exception as exc:  # missing document, or one saved with invalid values
                raise GatewayError(
                    f"payment gateway {gateway.id}: no valid sandbox gateway block named "
                    f"'{gateway.merchant_credential_name}' can be loaded: {exc}"
                ) from exc
        return SandboxGatewayAdapter(
            store_url=store_url,
            default_outcome=config.default_outcome,
            outcomes_by_amount=dict(config.outcomes_by_amount),
            latency_seconds=config.latency_seconds,
            honour_idempotency_keys=config.honour_idempotency_keys,
        )
    raise GatewayError(f"payment gateway {gateway.id}: provider {gateway.gateway_provider} has no adapter yet")


class GatewayAdapters:
    """The adapters one run needs, built once per PaymentGateway (building one loads its block)."""

    def __init__(self, *, store_url: str | None = None):
        self._store_url = store_url
        self._built: dict[str, PaymentGatewayAdapter] = {}

    def for_gateway(self, gateway: PaymentGateway) -> PaymentGatewayAdapter:
        """The gateway's adapter; GatewayError (or the block's own error) if it cannot be built."""
        if gateway.id not in self._built:
            self._built[gateway.id] = adapter_for(gateway, store_url=self._store_url)
        return self._built[gateway.id]
