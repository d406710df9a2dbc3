"""Reconcile gateways: hold the store against each gateway's own records (DESIGN.md §7), daily."""

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from actions.artifacts import SOBJECTS, text
from actions.reconcile_gateway import (
    ReconcileGatewayInput, ReconcileGatewayOutput, findings_of_run, reconcile_gateway_records,
)
from domain.reconciliation import Difference

# In this order: what differs first, so it shows without scrolling the table sideways.
_SHOWN = ("Difference", "Detail", "Status", "Resolution", "StoreRecordId", "GatewayReference", "StoreAmount",
          "GatewayAmount", "StoreStatus", "GatewayStatus", "OrderSummaryId", "FirstSeenDate", "Id")


@flow(name="reconcile-gateway", persist_result=False)
def reconcile_gateway(reconcile_input: ReconcileGatewayInput = ReconcileGatewayInput()) -> ReconcileGatewayOutput:
    """Compare the store with each gateway's records made in a window, and report every difference.

    Each difference becomes a ReconciliationFinding (read through the sObject API and SOQL)
    and, when first found, an ``om.reconciliation.difference`` event. A refund made at the
    gateway outside the engine, on a charge the store knows, is recorded at once. A rerun
    over the same window reports nothing new and resolves what it no longer finds. The run
    fails only on invalid input or when a gateway cannot be read (then it changes nothing
    more than the pages it had already read).

    Args:
        reconcile_input: The window (From, To or Lookback Hours), the gateway, and whether to record external refunds.
    """
    run_id = str(flow_run.id)
    out = reconcile_gateway_records(reconcile_input, run_id)
    _publish(out, run_id)
    return out


def _publish(out: ReconcileGatewayOutput, run_id: str) -> None:
    found: dict[str, int] = {}
    for account in out.accounts:
        for difference, count in account.differences.items():
            found[difference] = found.get(difference, 0) + count
    for difference in Difference:
        if not found.get(difference.value):
            continue
        rows = [{key: text(shown[key]) for key in _SHOWN}
                for shown in (finding.model_dump(by_alias=True) for finding in findings_of_run(run_id, difference.value))]
        create_table_artifact(
            key=f"reconciliation-{difference.value.lower()}", table=rows,
            description=f"{found[difference.value]} {difference.value} found by this run (the first {len(rows)} shown)")
    lines = [f"### Gateway reconciliation, {out.window_start:%Y-%m-%d %H:%M} to {out.window_end:%Y-%m-%d %H:%M} UTC", "",
             "| Account | Gateway records | Matched | Store records checked | New | Still open | Resolved | "
             "External refunds recorded |", "|---|---|---|---|---|---|---|---|"]
    for a in out.accounts:
        lines.append(f"| {a.gateway_account} | {a.gateway_records} | {a.matched} | {a.store_records_checked} | "
                     f"{a.new_findings} | {a.still_open} | {a.resolved} | {len(a.recorded_refund_ids)} |")
    lines += ["", "Differences by class: " + (", ".join(f"{k} {v}" for k, v in sorted(found.items())) or "none")]
    recorded = [r for a in out.accounts for r in a.recorded_refund_ids]
    if recorded:
        lines += ["", "Refunds recorded from the gateway: " + ", ".join(f"[{r}]({SOBJECTS}/Refund/{r})" for r in recorded)]
    lines += ["", f"Findings: `SELECT Id, Difference, Detail FROM ReconciliationFinding WHERE LastSeenRunId = '{run_id}'`"]
    create_markdown_artifact(key="reconciliation-summary", markdown="\n".join(lines) + "\n",
                             description="What this reconciliation run found")

