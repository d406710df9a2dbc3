"""The README's multi-host layout, as separate processes with separate data directories on
this machine: a database host (the machine's PostgreSQL, or the embedded one, and Redis)
and two engine hosts, each an ``om up`` with its own Prefect API process, warm executor
and REST facade, sharing one Prefect database and one store; the first host also runs
Prefect's services. A burst of operations through both facades: each run is claimed and
run exactly once, the gateway books each refund once (it does not deduplicate by key),
the totals are exact, and the events of the second host's runs reach the first host's
services through Redis."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import requests
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings
from simple_salesforce import Salesforce
from sqlmodel import col, select

from blocks import SandboxGateway
from db.engine import session_scope
from db.models import ExecutorClaim, Refund, RefundStatus
from gateways.sandbox_ledger import SandboxGatewayRefund
from runtime.prefect_server import PROJECT_ROOT
from runtime.processes import ManagedProcess, free_port
from runtime.stack import wait_for_log_line
from tests.conftest import drop_postgres_database, fresh_postgres_database
from tests.factories import make_order
from tests.ledger import assert_ledger_invariants
from tests.runtime.redis_databases import flushed_redis_database

REDIS_URL = "redis://127.0.0.1:6379/12"  # a database of this test's own (test_prefect_workers uses 13)
ACTION = "commerce/order-management/order-summaries/{}/async-actions/ensure-refunds-async"
OPERATIONS = 30


@pytest.fixture
def redis_database():
    yield from flushed_redis_database(REDIS_URL)


@pytest.fixture
def tls(tmp_path):
    """The facades serve https (simple-salesforce speaks nothing else): a CA and its certificate."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    return paths


@pytest.fixture
def shared_databases(embedded_postgres):
    """The database host: Prefect's database and the store, both fresh."""
    prefect_db = fresh_postgres_database(embedded_postgres, "om_hosts_prefect")
    store = fresh_postgres_database(embedded_postgres, "om_hosts_store")
    yield prefect_db, store
    for url in (prefect_db, store):
        drop_postgres_database(url)


class EngineHost:
    """One host's ``om up``: its data directory, ports and process."""

    def __init__(self, name: str, data_dir: Path, *extra: str, store: str, prefect_db: str, auth: str, token: str,
                 tls: dict[str, Path]):
        self.name, self.token, self.ca = name, token, tls["ca"]
        self.prefect_port, self.facade_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PREFECT_API_", "PREFECT_HOME", "OM_"))}  # nothing of this session's servers
        env.update(OM_DATABASE_URL=store, OM_PREFECT_DATABASE_URL=prefect_db, OM_PREFECT_AUTH_STRING=auth,
                   OM_API_TOKEN=token, OM_REDIS_URL=REDIS_URL, PYTHONPATH=str(PROJECT_ROOT))
        self.process = ManagedProcess.start(
            [sys.executable, "-m", "cli", "up", "--data-dir", str(data_dir), "--prefect-port", str(self.prefect_port),
             "--api-port", str(self.facade_port), "--certfile", str(tls["cert"]), "--keyfile", str(tls["key"]), *extra],
            env=env, log_path=data_dir.parent / f"{name}.log", name=name, stop_seconds=90)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    def wait_up(self) -> None:
        wait_for_log_line(self.process, "Order Management engine is up", timeout=240)

    def salesforce(self) -> Salesforce:
        session = requests.Session()
        session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides verify
        session.verify = str(self.ca)
        return Salesforce(instance_url=f"https://127.0.0.1:{self.facade_port}", session_id=self.token, version="60.0",
                          session=session)

    def interrupt(self) -> str:
        """Ctrl-C, as an operator stops it; its output once it has exited."""
        self.process.popen.send_signal(signal.SIGINT)
        self.process.popen.wait(120)
        return self.process.log_path.read_text(errors="replace")


def test_two_hosts_share_one_prefect_database_and_run_each_operation_once(
        redis_database, shared_databases, tls, tmp_path):
    prefect_db, store = shared_databases
    auth, token = f"om:{secrets.token_urlsafe(16)}", secrets.token_urlsafe(16)
    common = {"store": store, "prefect_db": prefect_db, "auth": auth, "token": token, "tls": tls}
    # The first host prepares Prefect's database and runs its services; the second joins it.
    first = EngineHost("host-a", tmp_path / "host-a", **common)
    try:
        first.wait_up()
        second = EngineHost("host-b", tmp_path / "host-b", "--no-prefect-services", **common)
        try:
            second.wait_up()
            _burst_runs_each_operation_once(first, second, store, auth)
            for host in (second, first):
                output = host.interrupt()
                assert host.process.popen.returncode == 0 and output.rstrip().endswith("stopped."), output[-2000:]
        finally:
            second.process.stop()
    finally:
        first.process.stop()
    assert not (tmp_path / "host-b" / "pg").exists()  # the second host started no database of its own
    assert (tmp_path / "host-b" / "logs" / "prefect-api.log").exists()
    assert not (tmp_path / "host-b" / "logs" / "prefect-services.log").exists()


def _burst_runs_each_operation_once(first: EngineHost, second: EngineHost, store: str, auth: str) -> None:
    gateway = f"hosts-{uuid.uuid4().hex[:6]}"
    with temporary_settings({PREFECT_API_URL: second.api_url, PREFECT_API_AUTH_STRING: auth}):
        SandboxGateway(honour_idempotency_keys=False).save(gateway)  # a repeat would refund again
    amounts = [Decimal("10.00") + Decimal("0.37") * i for i in range(OPERATIONS)]
    with session_scope(store) as session:
        orders = [make_order(session, payments=["50.00"], credit_memo=str(amount), gateway_block=gateway)
                  for amount in amounts]

    def accept(index: int) -> str:
        host = (first, second)[index % 2]
        order = orders[index]
        answer = host.salesforce().restful(ACTION.format(order.order_summary_id), method="POST",
                                           json={"creditMemoId": order.credit_memo_id})
        return answer["backgroundOperationId"]

    with ThreadPoolExecutor(max_workers=10) as pool:
        operation_ids = list(pool.map(accept, range(OPERATIONS)))
    assert len(set(operation_ids)) == OPERATIONS

    readers = [first.salesforce(), second.salesforce()]
    deadline = time.monotonic() + 180
    pending = set(range(OPERATIONS))
    while pending:
        for index in sorted(pending):
            reader = readers[(index + 1) % 2]  # read through the other host than the one that accepted it
            if reader.restful(f"sobjects/BackgroundOperation/{operation_ids[index]}")["Status"] == "Complete":
                pending.discard(index)
        for host in (first, second):
            assert host.process.alive(), host.process.tail(40)
        assert time.monotonic() < deadline, f"{len(pending)} operations not Complete"
        time.sleep(0.5)

    with temporary_settings({PREFECT_API_URL: first.api_url, PREFECT_API_AUTH_STRING: auth}):
        with get_client(sync_client=True) as client:
            for operation_id in operation_ids:
                history = [s.type for s in client.read_flow_run_states(uuid.UUID(operation_id))]
                assert history.count(StateType.RUNNING) == 1 and history[-1] == StateType.COMPLETED, history

    with session_scope(store) as session:
        claims = session.exec(select(ExecutorClaim).where(col(ExecutorClaim.flow_run_id).in_(operation_ids))).all()
        refunds = session.exec(select(Refund).where(
            col(Refund.credit_memo_id).in_([o.credit_memo_id for o in orders]))).all()
        booked = session.exec(select(SandboxGatewayRefund).where(
            col(SandboxGatewayRefund.idempotency_key).in_([r.idempotency_key for r in refunds]))).all()
    # A run is claimed again after waiting for a slot of its deployment's concurrency limit
    # (a new Scheduled state); it ran once all the same (one Running state above).
    assert {c.flow_run_id for c in claims} == set(operation_ids)
    assert len({c.executor_id for c in claims}) == 2  # both hosts' executors took a share
    assert len(refunds) == OPERATIONS and {r.status for r in refunds} == {RefundStatus.PROCESSED}
    assert len(booked) == OPERATIONS and sum(b.amount for b in booked) == sum(amounts)  # money moved once each
    assert sorted(b.amount for b in booked) == sorted(amounts)
    assert_ledger_invariants(store)

    # Each run's Completed event, whichever host's API took its state, was persisted by the
    # first host's services (the messages crossed through Redis) and reads back through either API.
    body = {"filter": {"event": {"name": ["prefect.flow-run.Completed"]},
                       "resource": {"id": [f"prefect.flow-run.{i}" for i in operation_ids]},
                       "occurred": {"since": "2020-01-01T00:00:00Z"}}, "limit": 50}
    user, password = auth.split(":", 1)
    deadline = time.monotonic() + 60
    while True:
        answer = httpx.post(f"{second.api_url}/events/filter", json=body, auth=(user, password), trust_env=False)
        assert answer.status_code == 200, answer.text
        events = answer.json()["events"]
        if len(events) >= OPERATIONS or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sorted(e["resource"]["prefect.resource.id"] for e in events) == sorted(
        f"prefect.flow-run.{i}" for i in operation_ids)
