"""Sweep credit memos: refund unrefunded credit-memo balances on a schedule (DESIGN.md §7)."""

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run

from actions.sweep_credit_memos import SweepCreditMemosInput, SweepCreditMemosOutput, sweep_credit_memo_balances


@flow(name="sweep-credit-memos", persist_result=False)
def sweep_credit_memos(sweep_input: SweepCreditMemosInput = SweepCreditMemosInput()) -> SweepCreditMemosOutput:
    """Refund the balance of every credit memo left unrefunded, as Ensure Refunds would, in batches.

    Declined or failed refunds give the memo its balance back and file a ProcessException
    without failing the run; timeouts stay Unknown for resolve-gateway-outcomes. The run
    fails, having written nothing, only on invalid input.

    Args:
        sweep_input: Which credit memos to sweep (age, how many, which ones, currency) and how many per transaction.
    """
    out = sweep_credit_memo_balances(sweep_input, str(flow_run.id))
    if out.totals:
        create_table_artifact(
            key="credit-memo-sweep",
            table=[{"currency": currency, **totals.model_dump(mode="json", by_alias=True)} for currency, totals in out.totals.items()],
            description=f"{out.swept} credit memos refunded, {len(out.skipped)} skipped",
        )
    return out
