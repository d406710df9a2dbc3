"""The Stripe account the gateway tests share: localstripe on loopback, seen by the adapter
and by a merchant's own code."""

from __future__ import annotations

import pytest
import stripe

from gateways.stripe import StripeGatewayAdapter

API_KEY = "sk_test_om_engine"


@pytest.fixture
def stripe_client(localstripe) -> stripe.StripeClient:
    """The account as a merchant's own code sees it (to make charges and read refunds)."""
    return stripe.StripeClient(API_KEY, base_addresses={"api": localstripe}, max_network_retries=0)


@pytest.fixture
def adapter(localstripe) -> StripeGatewayAdapter:
    return StripeGatewayAdapter(api_key=API_KEY, api_base=localstripe, timeout_seconds=10)
