"""Prefect's API in two processes and its services apart, on PostgreSQL and the machine's
Redis (runtime.prefect_server.start_scaled_prefect_server): flows run through it and their
events reach the event store through the separate services process."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import psutil
import pytest

from runtime.prefect_server import prefect_env, start_scaled_prefect_server
from runtime.processes import free_port
from tests.conftest import drop_postgres_database, fresh_postgres_database

REDIS_URL = "redis://127.0.0.1:6379/13"  # a database of this test's own: Redis streams outlive a Prefect database

_FLOW = """
from prefect import flow
from prefect.events import emit_event
from prefect.events.worker import EventsWorker

@flow(name="scaled-hello")
def hello(x: int) -> int:
    emit_event(event="om.scale-out.hello", resource={"prefect.resource.id": f"om.scale-out.{x}"})
    return x * 2

for x in range(3):
    assert hello(x) == 2 * x
EventsWorker.drain_all()
"""


@pytest.fixture
def redis_database():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis answers at 127.0.0.1:6379")
    client.flushdb()
    yield REDIS_URL
    client.flushdb()


def test_two_api_processes_and_services_apart_run_flows_and_keep_their_events(
        redis_database, embedded_postgres, tmp_path):
    database = fresh_postgres_database(embedded_postgres, "prefect_scaled")
    asyncpg_url = database.replace("postgresql+psycopg://", "postgresql+asyncpg://").replace(
        "postgresql://", "postgresql+asyncpg://")
    api, services, api_url = start_scaled_prefect_server(
        port=free_port(), home=tmp_path / "home", database_url=asyncpg_url, redis_url=redis_database, workers=2,
        log_dir=tmp_path / "logs")
    try:
        workers = [child for child in psutil.Process(api.popen.pid).children(recursive=True)
                   if "python" in child.name().lower()]
        assert len(workers) >= 2, [c.cmdline() for c in workers]  # uvicorn's workers beside its supervisor

        env = prefect_env(api_url)
        done = subprocess.run([sys.executable, "-c", _FLOW], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]

        body = {"filter": {"event": {"name": ["om.scale-out.hello"]}, "occurred": {"since": "2020-01-01T00:00:00Z"}},
                "limit": 50}
        deadline = time.monotonic() + 60
        while True:
            events = httpx.post(f"{api_url}/events/filter", json=body, trust_env=False).json()["events"]
            if len(events) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert sorted(e["resource"]["prefect.resource.id"] for e in events) == [f"om.scale-out.{x}" for x in range(3)]
        runs = httpx.post(f"{api_url}/flow_runs/filter", json={}, trust_env=False).json()
        assert sorted(run["state"]["type"] for run in runs) == ["COMPLETED"] * 3
        assert services.alive() and api.alive()
    finally:
        services.stop()
        api.stop()
        drop_postgres_database(database)
