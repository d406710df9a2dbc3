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

GATEWAY_HANG = {"latency_seconds": 15.0}
GATEWAY_TIMEOUT = {"default_outcome": "timeout"}
GATEWAY_5XX = {"default_outcome": "unavailable"}


@dataclass(frozen=True)
class Fault:
    """One fault: which stack it hits (``StackConfig.executor``), what is done, and when."""

    description: str
    executor: str = "warm"
    kill: str | None = None  # name prefix of the child killed with SIGKILL
    restart_store: bool = False  # restart the embedded PostgreSQL (the store and Prefect's database)
    while_accepting: bool = False  # strike while callers still wait for answers, not once money moves
    # how the sandbox gateway misbehaves (SandboxGateway fields), one phase of GATEWAY_FAULT_SECONDS after another
    gateway: tuple[dict, ...] = ()


FAULTS = {
    "executor": Fault("SIGKILL the warm executor (with the facade in its process, ./om up's default)", kill="engine"),
    "prefect-server": Fault("SIGKILL the Prefect server", kill="prefect server"),
    "store-postgres": Fault("restart PostgreSQL (fast shutdown, 5 s down): the store and Prefect's database",
                            restart_store=True),
    "facade": Fault("SIGKILL the REST facade (own process) while requests are being answered",
                    executor="warm-separate", kill="REST facade", while_accepting=True),
    "gateway-hang": Fault("the gateway takes 15 s per call", gateway=(GATEWAY_HANG,)),
    "gateway-timeout": Fault("the gateway acts but its answers are lost (timeouts)", gateway=(GATEWAY_TIMEOUT,)),
    "gateway-5xx": Fault("the gateway answers 503 and does nothing", gateway=(GATEWAY_5XX,)),
    # the three in a row on one stack: what the test suite runs (one stack instead of three)
    "gateway": Fault("the gateway hangs, then loses its answers, then answers 503",
                     gateway=(GATEWAY_HANG, GATEWAY_TIMEOUT, GATEWAY_5XX)),
}
BENCH_FAULTS = ("executor", "prefect-server", "store-postgres", "facade", "gateway-hang", "gateway-timeout", "gateway-5xx")
STORE_DOWN_SECONDS = 5.0
GATEWAY_FAULT_SECONDS = 15.0  # longer than the adapters' block cache (10 s): every process sees the fault
SANDBOX = {"latency_seconds": 0.5, "honour_idempotency_keys": False}  # a gateway that books every call it gets
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
    # beside them, Ensure Funds Async on another order: one invoice of 10.00 per caller, one authorization for all
    funds_accepted: int = 0
    funds_complete: int = 0
    captured: Decimal = Decimal("0.00")  # captured on the authorization
    capture_rows: int = 0  # capture Payments made
    gateway_captures: int = 0  # approved captures in the gateway's books for them
    # and the payment-level refunds API on a third order: 5.00 per caller from one 100.00 payment
    payment_refunds_accepted: int = 0
    payment_refunds_succeeded: int = 0
    payment_refunded: Decimal = Decimal("0.00")
    payment_gateway_refunds: int = 0
    restarts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # messages of operations that ended in Error

    def figures(self) -> list[tuple[str, float, str]]:
        """(name, value, unit) of the figures bench/results.json keeps."""
        units = {"accepted": "operations", "complete": "operations", "error": "operations", "refunded": "USD",
                 "gateway_refunds": "refunds", "refund_rows": "refunds", "funds_complete": "operations",
                 "captured": "USD", "gateway_captures": "captures", "payment_refunds_succeeded": "refunds",
                 "payment_refunded": "USD", "duplicated_keys": "keys", "retried_callers": "callers",
                 "seconds_to_all_final": "s"}
        return [(name.replace("_", " "), float(getattr(self, name)), unit) for name, unit in units.items()]

    def as_row(self) -> dict:
        row = asdict(self)
        for name, value in row.items():
            if isinstance(value, Decimal):
                row[name] = str(value)
        return row


def _order_with_summary(session, number: str) -> tuple[str, str, str]:
    """A USD order with one payment summary, on the campaign's sandbox: (gateway, order, summary)."""
    from db.models import OrderPaymentSummaryCreate, OrderSummaryCreate, PaymentGatewayCreate
    from db.sobjects import create_order_payment_summary, create_order_summary, create_payment_gateway

    gateway = create_payment_gateway(session=session, obj_in=PaymentGatewayCreate(
        payment_gateway_name="faults sandbox", merchant_credential_name=GATEWAY_BLOCK))
    order = create_order_summary(session=session, obj_in=OrderSummaryCreate(order_number=number, currency_iso_code="USD"))
    session.flush()
    summary = create_order_payment_summary(session=session, obj_in=OrderPaymentSummaryCreate(order_summary_id=order.id))
    session.flush()
    return gateway.id, order.id, summary.id


def _make_order(store_url: str, *, payments: int, each: Decimal) -> tuple[str, list[str]]:
    """An order with one payment summary paid by ``payments`` payments of ``each``: (order, payments)."""
    from db.engine import session_scope
    from db.models import PaymentCreate
    from db.sobjects import create_payment

    with session_scope(store_url) as s:
        gateway, order, summary = _order_with_summary(s, "F-1")
        made = [create_payment(session=s, obj_in=PaymentCreate(order_payment_summary_id=summary,
                                                                payment_gateway_id=gateway, amount=each))
                for _ in range(payments)]
        s.flush()
        return order, [p.id for p in made]


def _make_invoiced_order(store_url: str, *, invoices: int, each: Decimal) -> tuple[str, list[str]]:
    """An order with an authorization for all of its ``invoices`` invoices of ``each``: (order, invoices)."""
    from db.engine import session_scope
    from db.models import InvoiceCreate, PaymentAuthorizationCreate
    from db.sobjects import create_invoice, create_payment_authorization

    with session_scope(store_url) as s:
        gateway, order, summary = _order_with_summary(s, "F-2")
        create_payment_authorization(session=s, obj_in=PaymentAuthorizationCreate(
            order_payment_summary_id=summary, payment_gateway_id=gateway, amount=each * invoices))
        made = [create_invoice(session=s, obj_in=InvoiceCreate(reference_entity_id=order, total_amount=each))
                for _ in range(invoices)]
        s.flush()
        return order, [i.id for i in made]


@dataclass
class Answer:
    operation_id: str | None  # None: refused, or no answer in time
    attempts: int


def _ask(url: str, token: str, body: dict, key: str, deadline: float, answer_id) -> Answer:
    """One caller: POST until accepted (201), retrying a lost answer or a 503 with the same
    Idempotency-Key, as a client of a payments API should; ``answer_id`` picks what to keep
    from the 201's body."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    attempts = 0
    with httpx.Client(verify=False, timeout=30, trust_env=False) as client:
        while time.monotonic() < deadline:
            attempts += 1
            try:
                answer = client.post(url, headers=headers, json=body)
            except httpx.TransportError:
                time.sleep(0.5)
                continue
            if answer.status_code == 201:
                return Answer(answer_id(answer.json()), attempts)
            if answer.status_code != 503:
                return Answer(None, attempts)
            time.sleep(0.5)
    return Answer(None, attempts)


def _operation_id(body: dict) -> str:
    return body["backgroundOperationId"]


def _refund_id(body: dict) -> str:
    return body["refund"]["id"]


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
    if fault.gateway:
        from blocks import SandboxGateway

        log(f"the gateway misbehaves ({fault.description}): {in_flight}")
        for phase in fault.gateway:
            log(f"gateway: {phase} for {GATEWAY_FAULT_SECONDS:.0f} s")
            SandboxGateway(**(SANDBOX | phase)).save(GATEWAY_BLOCK, overwrite=True)
            time.sleep(GATEWAY_FAULT_SECONDS)
        SandboxGateway(**SANDBOX).save(GATEWAY_BLOCK, overwrite=True)
        log("the gateway is well again")
        return
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


def _resolve_unknowns(timeout: float, log) -> str:
    """Run resolve-gateway-outcomes on everything unknown now (its schedule would, later)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("resolve-gateway-outcomes/resolve-gateway-outcomes")
        run = client.create_flow_run_from_deployment(deployment.id, parameters={"older_than_seconds": 0})
        log(f"started resolve-gateway-outcomes {run.id}")
    [state] = _wait_final([run.id], timeout).values() or [None]
    return "not final" if state is None else f"{state.type.value} {state.message or ''}".strip()


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


def _refund_books(store_url: str, order_id: str) -> tuple[Decimal, int, int, int]:
    """(refunded, refund rows, approved gateway refunds, keys the gateway booked twice) of an order."""
    from sqlmodel import select

    from db.engine import session_scope
    from db.models import OrderPaymentSummary, Refund, RefundStatus
    from gateways.sandbox_ledger import SandboxGatewayRefund

    with session_scope(store_url) as session:
        summaries = [s.id for s in session.exec(select(OrderPaymentSummary).where(
            OrderPaymentSummary.order_summary_id == order_id))]
        refunds = session.exec(select(Refund).where(Refund.order_payment_summary_id.in_(summaries))).all()
        keys = [r.idempotency_key for r in refunds]
        booked = session.exec(select(SandboxGatewayRefund).where(SandboxGatewayRefund.idempotency_key.in_(keys))).all()
    refunded = sum((r.amount for r in refunds if r.status == RefundStatus.PROCESSED), Decimal("0.00"))
    approved = [b for b in booked if b.outcome == "approve"]
    duplicated = sum(1 for n in Counter(b.idempotency_key for b in booked).values() if n > 1)
    return refunded, len(refunds), len(approved), duplicated


def _ledger_violations(store_url: str) -> list[str]:
    from actions.audit_ledger import find_violations
    from db.engine import session_scope

    with session_scope(store_url) as session:
        _checked, violations = find_violations(session)
    return [str(v) for v in violations]


def _funds_books(store_url: str, order_id: str) -> tuple[Decimal, int, int, int]:
    """(captured, capture rows, approved gateway captures, keys the gateway booked twice)."""
    from sqlmodel import col, select

    from actions.ensure_funds import _capture_key
    from db.engine import session_scope
    from db.models import OrderPaymentSummary, Payment, PaymentAuthorization
    from gateways.sandbox_ledger import SandboxGatewayCapture

    with session_scope(store_url) as session:
        summaries = [s.id for s in session.exec(select(OrderPaymentSummary).where(
            OrderPaymentSummary.order_summary_id == order_id))]
        captured = sum((a.captured_amount for a in session.exec(select(PaymentAuthorization).where(
            col(PaymentAuthorization.order_payment_summary_id).in_(summaries)))), Decimal("0.00"))
        captures = session.exec(select(Payment).where(col(Payment.order_payment_summary_id).in_(summaries),
                                                      col(Payment.payment_authorization_id).is_not(None))).all()
        keys = [_capture_key(p.id) for p in captures]
        booked = session.exec(select(SandboxGatewayCapture).where(col(SandboxGatewayCapture.idempotency_key).in_(keys))).all()
    duplicated = sum(1 for n in Counter(b.idempotency_key for b in booked).values() if n > 1)
    return captured, len(captures), sum(1 for b in booked if b.outcome == "approve"), duplicated


def _wait_refunds_settled(store_url: str, refund_ids: list[str], timeout: float) -> dict[str, str]:
    """Each refund's final status (Pending ones waited for up to ``timeout``)."""
    from sqlmodel import col, select

    from db.engine import session_scope
    from db.models import Refund, RefundStatus

    deadline = time.monotonic() + timeout
    statuses: dict[str, str] = {}
    while True:
        with contextlib.suppress(Exception):
            with session_scope(store_url) as session:
                statuses = {r.id: r.status for r in session.exec(select(Refund).where(col(Refund.id).in_(refund_ids)))}
        if (len(statuses) == len(refund_ids) and RefundStatus.PENDING not in statuses.values()) \
                or time.monotonic() > deadline:
            return statuses
        time.sleep(0.5)


def run_fault(
    fault: str,
    *,
    scratch: Path,
    callers: int = 40,
    funds_callers: int = 10,
    payment_refund_callers: int = 10,
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
        SandboxGateway(**(SANDBOX | {"latency_seconds": gateway_latency})).save(GATEWAY_BLOCK, overwrite=True)
        order_id, _payments = _make_order(stack.store_url, payments=5, each=Decimal("100.00"))
        funds_order, invoices = _make_invoiced_order(stack.store_url, invoices=funds_callers, each=Decimal("10.00"))
        charged_order, [charge] = _make_order(stack.store_url, payments=1, each=Decimal("100.00"))
        supervisor = threading.Thread(target=_supervise, args=(stack, stop, restarts), daemon=True)
        supervisor.start()
        deadline = time.monotonic() + 180
        actions = f"{stack.facade_url}{API}/commerce/order-management/order-summaries"
        with ThreadPoolExecutor(callers + funds_callers + payment_refund_callers) as pool:
            asked = [pool.submit(_ask, f"{actions}/{order_id}/async-actions/ensure-refunds-async", token,
                                 {"excessFundsAmount": float(amount)}, f"refunds-{n}", deadline, _operation_id)
                     for n in range(callers)]
            funded = [pool.submit(_ask, f"{actions}/{funds_order}/async-actions/ensure-funds-async", token,
                                  {"invoiceId": invoice}, f"funds-{n}", deadline, _operation_id)
                      for n, invoice in enumerate(invoices)]
            charged = [pool.submit(_ask, f"{stack.facade_url}/payments/refunds/v1/refunds", token,
                                   {"refund": {"chargeId": charge, "amount": "5.00"}}, f"payment-refund-{n}", deadline,
                                   _refund_id)
                       for n in range(payment_refund_callers)]
            if chosen.while_accepting:
                in_flight = _wait_answering(asked)
            else:
                in_flight = _wait_in_flight(stack.store_url, order_id, asked, kill_after)
            killed_at = time.monotonic()
            _strike(stack, chosen, in_flight, log)
            answers = [f.result() for f in asked]
            ids = [UUID(a.operation_id) for a in answers if a.operation_id is not None]
            funds_answers = [f.result() for f in funded]
            funds_ids = [UUID(a.operation_id) for a in funds_answers if a.operation_id is not None]
            refund_answers = [f.result() for f in charged]
            refund_ids = [a.operation_id for a in refund_answers if a.operation_id is not None]
        states = _wait_final(ids + funds_ids, timeout)
        refund_statuses = _wait_refunds_settled(stack.store_url, refund_ids, timeout)
        if chosen.gateway:  # what the gateway left unknown is settled by asking it, as the schedule does
            resolutions = _resolve_unknowns(timeout, log)
            refund_statuses = _wait_refunds_settled(stack.store_url, refund_ids, timeout)
            log(f"resolver: {resolutions}")
        all_final = time.monotonic() - killed_at
        refunded, rows, approved, duplicated = _refund_books(stack.store_url, order_id)
        captured, capture_rows, gateway_captures, duplicated_captures = _funds_books(stack.store_url, funds_order)
        payment_refunded, _rows, payment_approved, duplicated_payment_refunds = _refund_books(stack.store_url, charged_order)
        violations = _ledger_violations(stack.store_url)
        complete = [i for i in ids if states.get(i) is not None and states[i].is_completed()]
        failed_ids = [i for i in ids + funds_ids
                      if states.get(i) is not None and (states[i].is_failed() or states[i].is_crashed())]
        # anything else final (Cancelled) is no success either: its message goes with the errors
        other_ids = [i for i in ids + funds_ids if states.get(i) is not None and states[i].is_final()
                     and not states[i].is_completed() and i not in failed_ids]
        failed = [states[i] for i in failed_ids + other_ids]
        return FaultFigures(
            fault=fault, accepted=len(ids),
            retried_callers=sum(1 for a in answers + funds_answers + refund_answers if a.attempts > 1),
            runs_created=_count_runs(), complete=len(complete), error=sum(1 for i in ids if i in failed_ids),
            not_final=sum(1 for i in ids if states.get(i) is None or not states[i].is_final()),
            refunded=refunded, expected=amount * len(complete), refund_rows=rows, gateway_refunds=approved,
            duplicated_keys=duplicated + duplicated_captures + duplicated_payment_refunds, ledger_violations=violations,
            seconds_to_all_final=round(all_final, 1),
            funds_accepted=len(funds_ids),
            funds_complete=sum(1 for i in funds_ids if states.get(i) is not None and states[i].is_completed()),
            captured=captured, capture_rows=capture_rows, gateway_captures=gateway_captures,
            payment_refunds_accepted=len(refund_ids),
            payment_refunds_succeeded=sum(1 for status in refund_statuses.values() if status == "Processed"),
            payment_refunded=payment_refunded, payment_gateway_refunds=payment_approved,
            restarts=restarts, errors=[f"{s.type.value}: {s.message or ''}" for s in failed],
        )
    finally:
        stop.set()
        stack.stop()


def run(*, faults: tuple[str, ...] = BENCH_FAULTS, callers: int = 40, log=print) -> list[FaultFigures]:
    """Every fault once, each on a stack of its own."""
    import tempfile

    figures = []
    for fault in faults:
        with tempfile.TemporaryDirectory(prefix=f"om-faults-{fault}-") as scratch:
            figures.append(run_fault(fault, scratch=Path(scratch), callers=callers, log=log))
    return figures


def main(
    fault: list[str] = typer.Option(list(BENCH_FAULTS), help=f"Faults to inflict, one stack each: {', '.join(FAULTS)}."),
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
