"""Keeping other systems in step with the refunds (seed 003): webhooks and the accounting export."""

from prefect import flow

from actions.accounting_export import ExportRun, export_refunds
from actions.webhooks import WebhookRun, deliver_webhooks


@flow(name="deliver-webhooks", persist_result=False)
def deliver_refund_webhooks(subscriptions: tuple[str, ...] = (), redrive_failed: bool = False) -> list[WebhookRun]:
    """Send Refund Created/Updated webhooks to each subscription, retrying failed ones with backoff.

    Args:
        subscriptions: WebhookSubscription block names; blank sends to every subscription.
        redrive_failed: Give deliveries that ran out of attempts (say, after an outage) a fresh start.
    """
    return deliver_webhooks(list(subscriptions) or None, redrive_failed)


@flow(name="export-refunds", persist_result=False)
def export_refunds_to_accounting(target_block: str = "accounting") -> ExportRun:
    """Backfill every refund into the accounting ledger, then keep it in step from the refund events.

    Args:
        target_block: The AccountingExport block naming the ledger file.
    """
    return export_refunds(target_block)
