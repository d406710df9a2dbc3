"""Audit the ledger invariants of DESIGN.md §8 on a schedule; fail loudly if one breaks."""

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from actions.audit_ledger import LedgerAudit, audit_ledger_invariants


@flow(name="audit-ledger", persist_result=False)
def audit_ledger() -> LedgerAudit:
    """Check every order payment summary, payment and credit memo against the invariants.

    Publishes the violations as a table artifact and fails the run when there are any,
    so an automation (or a person) notices.
    """
    audit = audit_ledger_invariants()
    if audit.violations:
        create_table_artifact(
            key="ledger-violations",
            table=[v.model_dump(by_alias=True) for v in audit.violations],
            description=f"{len(audit.violations)} ledger invariant violations",
        )
        raise RuntimeError(f"{len(audit.violations)} ledger invariant violations; see the ledger-violations artifact")
    get_run_logger().info("ledger audit: %d records checked, no violations", audit.records_checked)
    return audit
