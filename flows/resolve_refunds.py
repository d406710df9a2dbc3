"""Resolve refunds left Pending or Unknown by asking the gateway (DESIGN.md §7)."""

from prefect import flow

from actions.resolve_refunds import ResolveRefundsOutput, resolve_refunds as resolve_refunds_task


@flow(name="resolve-refunds", persist_result=False)
def resolve_refunds(older_than_seconds: int = 300) -> ResolveRefundsOutput:
    """Settle refunds whose gateway outcome is unknown or was never recorded.

    Args:
        older_than_seconds: Only refunds untouched for at least this many seconds.
    """
    return resolve_refunds_task(older_than_seconds=older_than_seconds)
