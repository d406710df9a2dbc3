"""Prefect blocks: configuration and secrets only (found through ``prefect.collections``)."""

from blocks.accounting import AccountingExport
from blocks.composition import CompositionBlock
from blocks.sandbox_gateway import SandboxGateway
from blocks.store_database import StoreDatabase
from blocks.stripe_gateway import StripeGateway
from blocks.webhooks import WebhookSubscription

__all__ = ["AccountingExport", "CompositionBlock", "SandboxGateway", "StoreDatabase", "StripeGateway", "WebhookSubscription"]
