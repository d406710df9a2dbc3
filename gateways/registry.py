"""Find the adapter for a PaymentGateway record (any object with its fields: ``GatewayRecord``)."""

from __future__ import annotations

import threading
import time

from domain.errors import GatewayError
from domain.gateway_provider import GatewayProvider
from gateways.contract import GatewayRecord, PaymentGatewayAdapter
from gateways.external import ExternalAdapter
from gateways.sandbox import SandboxGatewayAdapter
from gateways.stripe import StripeGatewayAdapter


BLOCK_CACHE_SECONDS = 10.0

# Providers that capture an authorization once and release what is left (Stripe, without
# its multicapture feature): Ensure Funds plans at most one capture per authorization.
CAPTURES_ONCE = frozenset({GatewayProvider.STRIPE})
_cache_lock = threading.Lock()
_loaded: dict[str, tuple[float, object]] = {}


def _load_block(block_type: type, name: str):
    """The block, loaded at most once per ``BLOCK_CACHE_SECONDS`` per process: loading is
    a Prefect API call, and was a sixth of an operation's wall time. A changed block
    takes effect in running executors within that time."""
    now = time.monotonic()
    cache_key = f"{block_type.get_block_type_slug()}/{name}"
    with _cache_lock:
        cached = _loaded.get(cache_key)
        if cached is not None and now - cached[0] < BLOCK_CACHE_SECONDS:
            return cached[1]
    config = block_type.load(name)
    with _cache_lock:
        _loaded[cache_key] = (now, config)
    return config


def _gateway_block(gateway: GatewayRecord, block_type: type):
    try:
        return _load_block(block_type, gateway.merchant_credential_name)
    except Exception as exc:  # missing document, or one saved with invalid values
        raise GatewayError(
            f"payment gateway {gateway.id}: no valid {block_type.get_block_type_name()} block named "
            f"'{gateway.merchant_credential_name}' can be loaded: {exc}"
        ) from exc


def adapter_for(gateway: GatewayRecord, *, store_url: str | None = None) -> PaymentGatewayAdapter:
    """Build the adapter for ``gateway`` from the block its MerchantCredentialName names."""
    if gateway.gateway_provider == GatewayProvider.SANDBOX:
        from blocks.sandbox_gateway import SandboxGateway

        config = _gateway_block(gateway, SandboxGateway) if gateway.merchant_credential_name else SandboxGateway()
        return SandboxGatewayAdapter(
            store_url=store_url,
            default_outcome=config.default_outcome,
            outcomes_by_amount=dict(config.outcomes_by_amount),
            latency_seconds=config.latency_seconds,
            honour_idempotency_keys=config.honour_idempotency_keys,
        )
    if gateway.gateway_provider == GatewayProvider.STRIPE:
        from blocks.stripe_gateway import StripeGateway

        if not gateway.merchant_credential_name:
            raise GatewayError(f"payment gateway {gateway.id}: a Stripe gateway names its credentials block in MerchantCredentialName")
        account = _gateway_block(gateway, StripeGateway)
        return StripeGatewayAdapter(
            api_key=account.api_key.get_secret_value(), api_base=account.api_base,
            stripe_account=account.stripe_account, timeout_seconds=account.timeout_seconds,
        )
    raise GatewayError(f"payment gateway {gateway.id}: provider {gateway.gateway_provider} has no adapter yet")


_EXTERNAL = ExternalAdapter()


class GatewayAdapters:
    """The adapters one run needs, built once per PaymentGateway (building one loads its block)."""

    def __init__(self, *, store_url: str | None = None):
        self._store_url = store_url
        self._built: dict[str, PaymentGatewayAdapter] = {}

    def for_gateway(self, gateway: GatewayRecord | None) -> PaymentGatewayAdapter:
        """The gateway's adapter; GatewayError (or the block's own error) if it cannot be built.

        ``None`` (an External payment or authorization: its money moves outside the engine)
        gets the ``ExternalAdapter``, which calls nothing."""
        if gateway is None:
            return _EXTERNAL
        if gateway.id not in self._built:
            self._built[gateway.id] = adapter_for(gateway, store_url=self._store_url)
        return self._built[gateway.id]
