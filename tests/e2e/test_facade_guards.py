"""What the facade refuses at the door, over https against the real facade: the API
description without a token, bodies and lists beyond their limits; and, with its Prefect
server unreachable, a 503 in Salesforce's error shape that started nothing."""

from __future__ import annotations

import sys
import time

import httpx
import pytest
import requests

from runtime.prefect_server import prefect_env
from runtime.processes import ManagedProcess, free_port, wait_for_http
from tests.factories import make_order

pytestmark = pytest.mark.e2e
ORDERS = "/services/data/v60.0/commerce/order-management/order-summaries"


def _error(response) -> dict:
    [error] = response.json()
    assert set(error) == {"errorCode", "message", "output", "enhancedErrorType"}, error
    return error


def test_the_api_description_needs_the_token(engine, tls):
    for path in ("/openapi.json", "/docs"):
        anonymous = requests.get(engine.facade_url + path, verify=str(tls[0]))
        assert anonymous.status_code == 401, anonymous.text
        assert _error(anonymous)["errorCode"] == "INVALID_SESSION_ID"
    described = requests.get(engine.facade_url + "/openapi.json", verify=str(tls[0]),
                             headers={"Authorization": f"Bearer {engine.config.token}"})
    assert described.status_code == 200
    assert any(p.endswith("/ensure-refunds-async") for p in described.json()["paths"])


def test_a_10_mb_body_is_refused_with_413_before_it_is_read(engine, tls):
    url = f"{engine.facade_url}{ORDERS}/1OsAAAAAAAAAAAAAAA/async-actions/ensure-refunds-async"
    headers = {"Authorization": f"Bearer {engine.config.token}", "Content-Type": "application/json"}
    body = b'{"excessFundsAmount": 1, "pad": "' + b"x" * 10_000_000 + b'"}'
    started = time.monotonic()
    announced = requests.post(url, data=body, headers=headers, verify=str(tls[0]))
    assert announced.status_code == 413, announced.text[:300]
    assert _error(announced)["errorCode"] == "REQUEST_TOO_LARGE"

    def chunks():  # no Content-Length: the limit is counted as the bytes arrive
        yield b'{"excessFundsAmount": 1, "pad": "'
        for _ in range(100):
            yield b"x" * 100_000
        yield b'"}'

    with httpx.Client(verify=str(tls[0]), trust_env=False) as client:
        streamed = client.post(url, content=chunks(), headers=headers)
    assert streamed.status_code == 413, streamed.text[:300]
    assert time.monotonic() - started < 30


def test_a_list_beyond_1000_entries_is_refused_and_changes_nothing(engine, tls, store_url):
    from db.engine import session_scope

    with session_scope(store_url) as session:
        order = make_order(session, payments=["50.00"], credit_memo="20.00")
    headers = {"Authorization": f"Bearer {engine.config.token}"}
    url = f"{engine.facade_url}{ORDERS}/{order.order_summary_id}/async-actions/ensure-refunds-async"
    too_many = {"creditMemoId": order.credit_memo_id, "invoicesToPay": [order.credit_memo_id] * 1001}
    refused = requests.post(url, json=too_many, headers=headers, verify=str(tls[0]))
    assert refused.status_code == 400, refused.text[:300]
    error = _error(refused)
    assert error["errorCode"] == "INVALID_INPUT" and "at most 1000" in error["message"], error
    sequences = {"creditMemoId": order.credit_memo_id, "isAllowPartial": True,
                 "sequences": [{"orderPaymentSummaryId": order.summaries[0], "amount": 0.01}] * 100_000}
    assert requests.post(url, json=sequences, headers=headers, verify=str(tls[0])).status_code == 413
    with session_scope(store_url) as session:
        from sqlmodel import select

        from db.models import Refund

        assert session.exec(select(Refund).where(Refund.credit_memo_id == order.credit_memo_id)).all() == []


def test_with_prefect_unreachable_the_facade_answers_503_at_once(store_url, tmp_path):
    """A facade whose Prefect server is down accepts nothing, and says so quickly in
    Salesforce's shape, with Retry-After: the caller retries with its Idempotency-Key."""
    from db.engine import session_scope

    with session_scope(store_url) as session:
        order = make_order(session, payments=["50.00"], credit_memo="20.00")
    port, nowhere = free_port(), f"http://127.0.0.1:{free_port()}/api"
    env = prefect_env(nowhere) | {"OM_DATABASE_URL": store_url, "OM_API_TOKEN": "t0ken"}
    facade = ManagedProcess.start([sys.executable, "-m", "api", "--port", str(port), "--host", "127.0.0.1"],
                                  env=env, log_path=tmp_path / "facade.log", name="facade")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", timeout=60, process=facade)
        started = time.monotonic()
        answer = httpx.post(f"http://127.0.0.1:{port}{ORDERS}/{order.order_summary_id}/async-actions/ensure-refunds-async",
                            json={"creditMemoId": order.credit_memo_id}, trust_env=False, timeout=60,
                            headers={"Authorization": "Bearer t0ken", "Idempotency-Key": "k-1"})
        took = time.monotonic() - started
    finally:
        facade.stop()
    assert answer.status_code == 503, answer.text
    assert _error(answer)["errorCode"] == "SERVICE_UNAVAILABLE"
    assert answer.headers["Retry-After"] == "5"
    assert took < 15, took
