"""Find the adapter for a PaymentGateway record."""

from __future__ import annotations

import threading
import time

from db.models import GatewayProvider, PaymentGateway
from domain.errors import GatewayError
from gateways.contract import PaymentGatewayAdapter
from gateways.sandbox import SandboxGatewayAdapter


BLOCK_CACHE_SECONDS = 10.0
_cache_lock = threading.Lock()
_loaded: dict[str, tuple[float, object]] = {}


def _load_sandbox_block(name: str):
    """The block, loaded at most once per ``BLOCK_CACHE_SECONDS`` per process: loading is
    a Prefect API call, and was a sixth of an operation's wall time. A changed block
    takes effect in running executors within that time."""
    from blocks.sandbox_gateway import SandboxGateway

    now = time.monotonic()
    with _cache_lock:
        cached = _loaded.get(name)
        if cached is not None and now - cached[0] < BLOCK_CACHE_SECONDS:
            return cached[1]
    config = SandboxGateway.load(name)
    with _cache_lock:
        _loaded[name] = (now, config)
    return config


def adapter_for(gateway: PaymentGateway, *, store_url: str | None = None) -> PaymentGatewayAdapter:
    """Build the adapter for ``gateway`` from the block its MerchantCredentialName names."""
    if gateway.gateway_provider == GatewayProvider.SANDBOX:
        from blocks.sandbox_gateway import SandboxGateway

        config = SandboxGateway()
        if gateway.merchant_credential_name:
            try:
                config = _load_sandbox_block(gateway.merchant_credential_name)
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
