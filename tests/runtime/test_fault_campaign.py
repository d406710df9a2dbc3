"""The fault campaign on real processes: the whole stack of ``./om up`` in a scratch
directory, 40 callers asking Ensure Refunds Async for 10.00 each on an order with
5 x 100.00 captured (and beside them 10 Ensure Funds Async and 10 payment-level refunds
on two other orders), and mid-load one fault: SIGKILL of the executor, of the Prefect
server or of the REST facade, a restart of PostgreSQL, or a gateway that hangs, then
loses its answers, then answers 503 (what it left unknown is settled by the resolver, as
its schedule would). The stack's supervisor restarts what was killed. Every accepted operation must end Complete, the refunds must add up to
what they asked, the gateway (which does not deduplicate by key) must hold exactly one
refund per refund row, and the ledger must hold.

Each fault runs ``python -m bench.faults`` in a process of its own (the stack points the
process's Prefect settings at its own server, which must not leak into this session)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from bench.faults import FAULTS
from runtime.prefect_server import PROJECT_ROOT

CALLERS = 40


@pytest.mark.parametrize("fault", ["executor", "prefect-server", "store-postgres", "facade", "gateway"])
def test_every_accepted_operation_completes_and_money_moves_once(fault, tmp_path):
    out = tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "OM_"))}  # a stack of its own
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    ran = subprocess.run([sys.executable, "-m", "bench.faults", "--fault", fault, "--callers", str(CALLERS),
                          "--json", str(out)], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-5000:]
    [figures] = json.loads(out.read_text())

    assert figures["accepted"] == CALLERS, figures
    assert figures["runs_created"] == CALLERS, figures  # a retried request never starts a second operation
    assert (figures["complete"], figures["error"], figures["not_final"]) == (CALLERS, 0, 0), figures
    assert Decimal(figures["refunded"]) == Decimal("10.00") * CALLERS == Decimal(figures["expected"])
    assert figures["refund_rows"] == figures["gateway_refunds"] == CALLERS, figures
    assert figures["duplicated_keys"] == 0, figures
    assert figures["ledger_violations"] == [], figures
    # beside them: Ensure Funds (10 invoices of 10.00, one authorization) and payment-level refunds (10 x 5.00)
    assert (figures["funds_accepted"], figures["funds_complete"]) == (10, 10), figures
    assert Decimal(figures["captured"]) == Decimal("100.00"), figures
    assert figures["capture_rows"] == figures["gateway_captures"] == 10, figures
    assert (figures["payment_refunds_accepted"], figures["payment_refunds_succeeded"]) == (10, 10), figures
    assert Decimal(figures["payment_refunded"]) == Decimal("50.00") and figures["payment_gateway_refunds"] == 10, figures
    if FAULTS[fault].kill:
        assert any("restarted" in line for line in figures["restarts"]), figures["restarts"]
