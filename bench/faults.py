"""The fault campaign: the whole stack of ``./om up`` under load, one of its processes
killed with SIGKILL mid-load, the supervisor restarting it, and what every accepted
operation became.

One run of :func:`run_fault` starts the stack (embedded PostgreSQL, Prefect server, warm
executor with the REST facade) in a scratch directory, makes an order with 5 x 100.00
captured on a sandbox gateway that answers in ``gateway_latency`` seconds and does not
deduplicate by idempotency key (the worst case: a blind re-send would refund twice),
and has ``callers`` clients ask Ensure Refunds Async for ``amount`` each at once over
HTTP, each with an Idempotency-Key it reuses when an answer is lost. ``kill_after``
seconds in, the chosen process is killed with SIGKILL; ``Stack.supervise`` (what ``./om
up`` runs every half second) restarts it. Then it waits for every accepted operation to
end and reads the figures from the runs, the store and the gateway's own books.

Used by ``python -m bench --parts faults`` (the table) and by
tests/runtime/test_fault_campaign.py (the assertions).
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import httpx
import typer
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

@dataclass(frozen=True)
class Fault:
    """One fault: which stack it hits (``StackConfig.executor``), what is done, and when."""

    description: str
    executor: str = "warm"
    kill: str | None = None  # name prefix of the child killed with SIGKILL
    restart_store: bool = False  # restart the embedded PostgreSQL (the store and Prefect's database)
    while_accepting: bool = False  # strike while callers still wait for answers, not once money moves


FAULTS = {
    "executor": Fault("SIGKILL the warm executor (with the facade in its process, ./om up's default)", kill="engine"),
    "prefect-server": Fault("SIGKILL the Prefect server", kill="prefect server"),
    "store-postgres": Fault("restart PostgreSQL (fast shutdown, 5 s down): the store and Prefect's database",
                            restart_store=True),
    "facade": Fault("SIGKILL the REST facade (own process) while requests are being answered",
                    executor="warm-separate", kill="REST facade", while_accepting=True),
}
STORE_DOWN_SECONDS = 5.0
GATEWAY_BLOCK = "faults-sandbox"
API = "/services/data/v60.0"


@dataclass
class FaultFigures:
    """What a client and an auditor see after one fault."""

    fault: str
    accepted: int
    retried_callers: int  # callers whose first attempt got no answer or a 503 (they retried, same key)
    runs_created: int  # flow runs of Ensure Refunds Async in Prefect: one per accepted operation
    complete: int
    error: int
    not_final: int
    refunded: Decimal  # Processed refunds on the order
    expected: Decimal  # the sum asked by the operations that completed
    refund_rows: int
    gateway_refunds: int  # approved refunds in the gateway's books for this order's refunds
    duplicated_keys: int  # idempotency keys the gateway booked more than once
    ledger_violations: list[str]
    seconds_to_all_final: float  # from the kill
    restarts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # messages of operations that ended in Error

    def as_row(self) -> dict:
        row = asdict(self)
        row["refunded"], row["expected"] = str(self.refunded), str(self.expected)
        return row


def _make_order(store_url: str, *, payments: int, each: Decimal) -> str:
    from db.engine import session_scope
    from db.models import OrderPaymentSummaryCreate, OrderSummaryCreate, PaymentCreate, PaymentGatewayCreate
    from db.sobjects import create_order_payment_summary, create_order_summary, create_payment, create_payment_gateway

    with session_scope(store_url) as s:
        gateway = create_payment_gateway(session=s, obj_in=PaymentGatewayCreate(
            payment_gateway_name="faults sandbox", merchant_credential_name=GATEWAY_BLOCK))
        order = create_order_summary(session=s, obj_in=OrderSummaryCreate(order_number="F-1", currency_iso_code="USD"))
        s.flush()
        summary = create_order_payment_summary(session=s, obj_in=OrderPaymentSummaryCreate(order_summary_id=order.id))
        s.flush()
        for _ in range(payments):
            create_payment(session=s, obj_in=PaymentCreate(order_payment_summary_id=summary.id,
                                                           payment_gateway_id=gateway.id, amount=each))
        return order.id


@dataclass
class Answer:
    operation_id: str | None  # None: refused, or no answer in time
    attempts: int


def _ask(facade: str, token: str, order_id: str, amount: Decimal, key: str, deadline: float) -> Answer:
    """One caller: POST until accepted (201), retrying a lost answer or a 503 with the same
    Idempotency-Key, as a client of a payments API should."""
    url = f"{facade}{API}/commerce/order-management/order-summaries/{order_id}/async-actions/ensure-refunds-async"
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    attempts = 0
    with httpx.Client(verify=False, timeout=30, trust_env=False) as client:
        while time.monotonic() < deadline:
            attempts += 1
            try:
                answer = client.post(url, headers=headers, json={"excessFundsAmount": float(amount)})
            except httpx.TransportError:
                time.sleep(0.5)
                continue
            if answer.status_code == 201:
                return Answer(answer.json()["backgroundOperationId"], attempts)
            if answer.status_code != 503:
                return Answer(None, attempts)
            time.sleep(0.5)
    return Answer(None, attempts)


def _wait_in_flight(store_url: str, order_id: str, asked, at_least: float, timeout: float = 120) -> str:
    """Wait ``at_least`` seconds and until money is in motion (a refund reserved and
    waiting for the gateway), so the kill lands mid-operation; say what was in flight."""
    from sqlmodel import func, select

    from db.engine import session_scope
    from db.models import OrderPaymentSummary, Refund, RefundStatus

    time.sleep(at_least)
    deadline = time.monotonic() + timeout
    while True:
        with session_scope(store_url) as session:
            counts = dict(session.exec(
                select(Refund.status, func.count()).join(OrderPaymentSummary,
                                                         Refund.order_payment_summary_id == OrderPaymentSummary.id)
                .where(OrderPaymentSummary.order_summary_id == order_id).group_by(Refund.status)).all())
        accepted = sum(1 for f in asked if f.done())
        if counts.get(RefundStatus.PENDING) or time.monotonic() > deadline:
            return (f"{accepted} operations accepted, refunds {counts.get(RefundStatus.PROCESSED, 0)} Processed"
                    f" and {counts.get(RefundStatus.PENDING, 0)} Pending at the gateway")
        time.sleep(0.05)


def _wait_answering(asked, timeout: float = 120) -> str:
    """Wait until some callers have their answer and others still wait for theirs."""
    deadline = time.monotonic() + timeout
    while True:
        answered = sum(1 for f in asked if f.done())
        if 0 < answered < len(asked) or time.monotonic() > deadline:
            return f"{answered} of {len(asked)} callers answered"
        time.sleep(0.01)


def _strike(stack, fault: Fault, in_flight: str, log) -> None:
    if fault.restart_store:
        log(f"restarting PostgreSQL ({STORE_DOWN_SECONDS:.0f} s down): {in_flight}")
        stack.postgres.restart(down_seconds=STORE_DOWN_SECONDS)
        log("PostgreSQL is back")
        return
    victim = next(p for p in stack.processes if p.name.startswith(fault.kill))
    log(f"killing {victim.name} (pid {victim.pid}) with SIGKILL: {in_flight}")
    victim._signal_group(signal.SIGKILL)


def _supervise(stack, stop: threading.Event, restarts: list[str]) -> None:
    def log(line: str) -> None:
        restarts.append(line)

    while not stop.wait(0.3):
        stack.supervise(log=log)


def _read_states(ids: list[UUID]) -> dict[UUID, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids))
    return {run.id: run.state for run in runs}


def _count_runs() -> int:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("ensure-refunds-async/ensure-refunds-async")
        return client.count_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))


def _wait_final(ids: list[UUID], timeout: float) -> dict[UUID, object]:
    deadline = time.monotonic() + timeout
    states: dict[UUID, object] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the Prefect server may be the process that is down
            states = _read_states(ids)
            if len(states) == len(ids) and all(s is not None and s.is_final() for s in states.values()):
                return states
        time.sleep(0.5)
    return states


def _books(store_url: str, order_id: str) -> tuple[Decimal, int, int, int, list[str]]:
    from sqlmodel import select

    from actions.audit_ledger import find_violations
    from db.engine import session_scope
    from db.models import OrderPaymentSummary, Refund, RefundStatus
    from gateways.sandbox_ledger import SandboxGatewayRefund

    with session_scope(store_url) as session:
        summaries = [s.id for s in session.exec(select(OrderPaymentSummary).where(
            OrderPaymentSummary.order_summary_id == order_id))]
        refunds = session.exec(select(Refund).where(Refund.order_payment_summary_id.in_(summaries))).all()
        keys = [r.idempotency_key for r in refunds]
        booked = session.exec(select(SandboxGatewayRefund).where(SandboxGatewayRefund.idempotency_key.in_(keys))).all()
        _checked, violations = find_violations(session)
    refunded = sum((r.amount for r in refunds if r.status == RefundStatus.PROCESSED), Decimal("0.00"))
    approved = [b for b in booked if b.outcome == "approve"]
    duplicated = sum(1 for n in Counter(b.idempotency_key for b in booked).values() if n > 1)
    return refunded, len(refunds), len(approved), duplicated, [str(v) for v in violations]


def run_fault(
    fault: str,
    *,
    scratch: Path,
    callers: int = 40,
    amount: Decimal = Decimal("10.00"),
    kill_after: float = 2.0,  # seconds after the first request, and not before a refund is at the gateway
    gateway_latency: float = 0.5,
    timeout: float = 300,
    log=print,
) -> FaultFigures:
    """Start a stack, load it, kill ``FAULTS[fault]`` with SIGKILL, and report."""
    from blocks import SandboxGateway
    from runtime.processes import free_port
    from runtime.stack import Stack, StackConfig

    chosen = FAULTS[fault]
    token = secrets.token_urlsafe(16)
    stack = Stack(StackConfig(data_dir=scratch, prefect_port=free_port(), api_port=free_port(), token=token,
                              executor=chosen.executor))
    stop = threading.Event()
    restarts: list[str] = []
    try:
        stack.start(log=log)
        SandboxGateway(latency_seconds=gateway_latency, honour_idempotency_keys=False).save(GATEWAY_BLOCK, overwrite=True)
        order_id = _make_order(stack.store_url, payments=5, each=Decimal("100.00"))
        supervisor = threading.Thread(target=_supervise, args=(stack, stop, restarts), daemon=True)
        supervisor.start()
        deadline = time.monotonic() + 180
        with ThreadPoolExecutor(callers) as pool:
            asked = [pool.submit(_ask, stack.facade_url, token, order_id, amount, f"faults-{n}", deadline)
                     for n in range(callers)]
            if chosen.while_accepting:
                in_flight = _wait_answering(asked)
            else:
                in_flight = _wait_in_flight(stack.store_url, order_id, asked, kill_after)
            killed_at = time.monotonic()
            _strike(stack, chosen, in_flight, log)
            answers = [f.result() for f in asked]
            ids = [UUID(a.operation_id) for a in answers if a.operation_id is not None]
        states = _wait_final(ids, timeout)
        all_final = time.monotonic() - killed_at
        refunded, rows, approved, duplicated, violations = _books(stack.store_url, order_id)
        complete = [i for i, s in states.items() if s is not None and s.is_completed()]
        failed = [s for s in states.values() if s is not None and (s.is_failed() or s.is_crashed())]
        return FaultFigures(
            fault=fault, accepted=len(ids), retried_callers=sum(1 for a in answers if a.attempts > 1),
            runs_created=_count_runs(), complete=len(complete), error=len(failed),
            not_final=len(ids) - len(complete) - len(failed), refunded=refunded, expected=amount * len(complete),
            refund_rows=rows, gateway_refunds=approved, duplicated_keys=duplicated, ledger_violations=violations,
            seconds_to_all_final=round(all_final, 1), restarts=restarts, errors=[s.message or "" for s in failed],
        )
    finally:
        stop.set()
        stack.stop()


def run(*, faults: tuple[str, ...] = tuple(FAULTS), callers: int = 40, log=print) -> list[FaultFigures]:
    """Every fault once, each on a stack of its own."""
    import tempfile

    figures = []
    for fault in faults:
        with tempfile.TemporaryDirectory(prefix=f"om-faults-{fault}-") as scratch:
            figures.append(run_fault(fault, scratch=Path(scratch), callers=callers, log=log))
    return figures


def main(
    fault: list[str] = typer.Option(list(FAULTS), help=f"Faults to inflict, one stack each: {', '.join(FAULTS)}."),
    callers: int = typer.Option(40, min=1, help="Concurrent callers, each asking Ensure Refunds Async for 10.00."),
    json_out: Path = typer.Option(None, "--json", help="Write each fault's figures here as JSON."),
) -> None:
    """``python -m bench.faults``: the campaign alone, figures as JSON (the fault tests run it so)."""
    import json

    unknown = set(fault) - set(FAULTS)
    if unknown:
        raise typer.BadParameter(f"unknown faults {sorted(unknown)}; choose from {list(FAULTS)}")
    figures = run(faults=tuple(fault), callers=callers)
    rows = [f.as_row() for f in figures]
    if json_out is not None:
        json_out.write_text(json.dumps(rows, indent=2))
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    typer.run(main)
