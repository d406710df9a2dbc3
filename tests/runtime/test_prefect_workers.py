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
from tests.runtime.redis_databases import flushed_redis_database

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
    yield from flushed_redis_database(REDIS_URL)


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


def test_a_redis_database_carries_one_prefect_database_and_refuses_another(redis_database):
    import redis

    from runtime.prefect_server import REDIS_OWNER_KEY, RedisDatabaseRefused, claim_redis_database

    claim_redis_database(redis_database, "cluster-1/prefect/16384")
    claim_redis_database(redis_database, "cluster-1/prefect/16384")  # a second host of the same database
    with pytest.raises(RedisDatabaseRefused, match="another Prefect database"):
        claim_redis_database(redis_database, "cluster-2/prefect/16384")  # same name, another cluster
    client = redis.Redis.from_url(redis_database)
    assert client.get(REDIS_OWNER_KEY) == b"cluster-1/prefect/16384"  # the refusal changed nothing
    client.flushdb()
    client.set("someone-elses-key", "x")
    with pytest.raises(RedisDatabaseRefused, match="already holds 1 keys of something else"):
        claim_redis_database(redis_database, "cluster-1/prefect/16384")
    assert client.keys("*") == [b"someone-elses-key"]


def test_no_redis_answering_is_a_clear_refusal():
    from runtime.prefect_server import RedisDatabaseRefused, claim_redis_database

    with pytest.raises(RedisDatabaseRefused, match="no Redis answers at redis://127.0.0.1:1/0"):
        claim_redis_database("redis://127.0.0.1:1/0", "cluster-1/prefect/16384")


def test_several_api_processes_need_redis_and_several_executors_a_warm_executor(tmp_path):
    from runtime.stack import StackConfig

    with pytest.raises(ValueError, match="give redis_url"):
        StackConfig(data_dir=tmp_path, prefect_workers=2)
    with pytest.raises(ValueError, match="not stock serve"):
        StackConfig(data_dir=tmp_path, executors=2, executor="serve")
    with pytest.raises(ValueError, match="at least 1"):
        StackConfig(data_dir=tmp_path, executors=0)
    with pytest.raises(ValueError, match="--prefect-workers, --redis-url shape a Prefect server of om up's own"):
        StackConfig(data_dir=tmp_path, prefect_api_url="http://elsewhere:4200/api", prefect_workers=2,
                    redis_url=REDIS_URL)
    with pytest.raises(ValueError, match="give --redis-url"):
        StackConfig(data_dir=tmp_path, prefect_services=False)
    StackConfig(data_dir=tmp_path, prefect_api_url="http://elsewhere:4200/api", executors=3)  # executors only: fine


def test_prefect_gets_the_whole_redis_url_and_messages_never_show_its_password():
    from runtime.prefect_server import SetupRefused, redacted_url, redis_messaging_env

    url = "rediss://om:s3cret@redis.internal:6380/4"
    assert redis_messaging_env(url)["PREFECT_REDIS_MESSAGING_URL"] == url  # password and TLS reach Prefect
    assert redacted_url(url) == "rediss://om:***@redis.internal:6380/4"
    assert redacted_url(REDIS_URL) == REDIS_URL
    with pytest.raises(SetupRefused, match="not 'http://om:\\*\\*\\*@redis:6379/0'"):
        redis_messaging_env("http://om:s3cret@redis:6379/0")


def test_prefect_database_url_takes_postgresql_in_asyncpg_and_refuses_sqlite():
    from runtime.prefect_server import prefect_database_url

    assert prefect_database_url("postgresql://postgres@db:5432/prefect") == "postgresql+asyncpg://postgres@db:5432/prefect"
    assert prefect_database_url("postgresql+psycopg://u:p@db/prefect") == "postgresql+asyncpg://u:p@db/prefect"
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        prefect_database_url("sqlite:///prefect.db")


def test_om_up_refuses_a_redis_database_of_another_prefect_database_and_leaves_nothing_running(
        redis_database, tmp_path):
    import os

    import redis

    from runtime.prefect_server import PROJECT_ROOT, REDIS_OWNER_KEY
    from runtime.processes import free_port

    redis.Redis.from_url(redis_database).set(REDIS_OWNER_KEY, "another-cluster/prefect/16384")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "OM_"))}
    done = subprocess.run(
        [sys.executable, "-m", "cli", "up", "--data-dir", str(tmp_path / "data"), "--redis-url", redis_database,
         "--prefect-workers", "2", "--prefect-port", str(free_port()), "--api-port", str(free_port())],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    output = " ".join((done.stdout + done.stderr).split())  # rich wraps lines
    assert done.returncode == 2, output[-3000:]
    assert "carries the messages of another Prefect database (another-cluster/prefect/16384)" in output
    assert output.endswith("stopped.")
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert not (tmp_path / "data" / "logs" / "prefect-api.log").exists()  # no API process was started
