"""Resolve gateway outcomes: settle refunds left Pending/Unknown and captures left Draft
by asking the gateway (DESIGN.md §7), never retrying blind."""

from prefect import flow

from actions.fields import ActionModel
from actions.resolve_captures import ResolveCapturesOutput, resolve_captures
from actions.resolve_refunds import ResolveRefundsOutput, resolve_refunds


class ResolveGatewayOutcomesOutput(ActionModel):
    refunds: ResolveRefundsOutput
    captures: ResolveCapturesOutput


@flow(name="resolve-gateway-outcomes", persist_result=False)
def resolve_gateway_outcomes(older_than_seconds: int = 300) -> ResolveGatewayOutcomesOutput:
    """Settle refunds and captures whose gateway outcome is unknown or was never recorded.

    Args:
        older_than_seconds: Only records untouched for at least this many seconds.
    """
    return ResolveGatewayOutcomesOutput(
        refunds=resolve_refunds(older_than_seconds=older_than_seconds),
        captures=resolve_captures(older_than_seconds=older_than_seconds),
    )
