"""A reconcile-gateway run whose executor is killed (SIGKILL) after it recorded a refund made
at the gateway and while it asks the gateway about the store's records: another executor
resumes the same run, which records nothing twice and reports each difference once."""

from __future__ import annotations

import signal
import sys
import time
import uuid
from datetime import timedelta
from decimal import Decimal as D

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from sqlmodel import select

from actions.audit_ledger import find_violations
from blocks import SandboxGateway
from db.engine import session_scope
from db.ids import new_id
from db.models import (
    InteractionStatus, InteractionType, OrderPaymentSummary, Payment, PaymentGatewayLog, ReconciliationFinding, Refund,
    RefundStatus,
)
from db.reconciliation import GATEWAY_FUNDING
from db.types import utcnow
from gateways.contract import RefundCommand
from gateways.sandbox import SandboxGatewayAdapter
from runtime.prefect_server import prefect_env
from runtime.processes import ManagedProcess
from tests.factories import make_order
from tests.runtime.test_scale_out import serving, wait_until

PHANTOMS = 4


@pytest.fixture
def pg_own_store(own_store):
    if not own_store.startswith("postgresql"):
        pytest.skip("executors in several processes share a PostgreSQL store (SQLite is for one process)")
    return own_store


def _executor(store: str, prefect_api: str, name: str, label: str, log_dir) -> ManagedProcess:
    return ManagedProcess.start(
        [sys.executable, "-m", "runtime.executor", "--work-pool", name, "--deployment-name", name, "--limit", "2",
         "--orphan-grace-seconds", "4", "--recovery-flow", ""],
        env=prefect_env(prefect_api) | {"OM_DATABASE_URL": store}, log_path=log_dir / f"{label}.log", name=label)


def test_a_killed_reconcile_run_resumes_and_records_nothing_twice(pg_own_store, prefect_api, tmp_path):
    name, slow = f"rf-{uuid.uuid4().hex[:8]}", f"slow-{uuid.uuid4().hex[:6]}"
    SandboxGateway(latency_seconds=3).save(slow, overwrite=True)  # each listing page and lookup takes 3 s
    since = utcnow() - timedelta(seconds=1)
    with session_scope(pg_own_store) as s:
        order = make_order(s, payments=["100.00"], gateway_block=slow)
        payment = s.get(Payment, order.payments[order.summaries[0]][0])
        phantoms = []
        for _ in range(PHANTOMS):  # refunds that say they moved money; the gateway never saw them
            phantom = Refund(id=new_id("Refund"), order_payment_summary_id=order.summaries[0], payment_id=payment.id,
                             amount=D("1.00"), currency_iso_code="USD", status=RefundStatus.PROCESSED,
                             funding_source="Payment", idempotency_key=f"om-refund-phantom-{uuid.uuid4().hex}",
                             payment_gateway_id=payment.payment_gateway_id)
            s.add_all([phantom, PaymentGatewayLog(
                id=new_id("PaymentGatewayLog"), payment_gateway_id=payment.payment_gateway_id,
                reference_entity_id=phantom.id, interaction_type=InteractionType.REFUND,
                interaction_status=InteractionStatus.SUCCESS, sf_ref_number=phantom.idempotency_key)])
            phantoms.append(phantom.id)
        for record in (s.get(Payment, payment.id), s.get(OrderPaymentSummary, order.summaries[0])):
            record.refunded_amount += D(PHANTOMS)
            s.add(record)
    outside = SandboxGatewayAdapter(store_url=pg_own_store).refund(RefundCommand(
        idempotency_key="dashboard-killed", charge_reference=payment.gateway_ref_number, amount=D("25.00"), currency="USD"))

    def recorded() -> list[Refund]:
        with session_scope(pg_own_store) as s:
            return list(s.exec(select(Refund).where(Refund.funding_source == GATEWAY_FUNDING)))

    doomed = _executor(pg_own_store, prefect_api, name, "doomed", tmp_path)
    survivor = None
    try:
        wait_until(lambda: serving(doomed), 90, "the first executor", [doomed])
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(f"reconcile-gateway/{name}")
            run = client.create_flow_run_from_deployment(deployment.id, parameters={
                "reconcile_input": {"windowStart": since.isoformat(), "gateway": order.gateway_id}})
        wait_until(lambda: recorded() != [], 90, "the external refund to be recorded", [doomed])
        time.sleep(1)  # now asking the gateway about the phantoms, 3 s each
        doomed._signal_group(signal.SIGKILL)  # no drain, no goodbye: as if the machine died
        doomed.popen.wait(10)
        SandboxGateway(latency_seconds=0).save(slow, overwrite=True)

        survivor = _executor(pg_own_store, prefect_api, name, "survivor", tmp_path)
        with get_client(sync_client=True) as client:
            wait_until(lambda: client.read_flow_run(run.id).state.is_final(), 180,
                       "the dead executor's run to be resumed and finish", [survivor])
            final = client.read_flow_run(run.id)
    finally:
        doomed.stop()
        if survivor is not None:
            survivor.stop()

    assert final.state.type == StateType.COMPLETED, final.state
    assert final.run_count == 2  # the same flow run, run again
    [refund] = recorded()
    assert (refund.amount, refund.gateway_ref_number, refund.status) == (D("25.00"), outside.gateway_reference,
                                                                        RefundStatus.PROCESSED)
    with session_scope(pg_own_store) as s:
        assert s.get(Payment, payment.id).refunded_amount == D(PHANTOMS) + D("25.00")
        findings = list(s.exec(select(ReconciliationFinding)))
        assert find_violations(s)[1] == []
    assert sorted((f.difference, f.store_record_id or f.recorded_refund_id) for f in findings) == sorted(
        [("MissingAtGateway", p) for p in phantoms] + [("MissingInStore", refund.id)])
    assert all(f.first_seen_run_id == str(run.id) for f in findings)
