"""A real Prefect server on the embedded PostgreSQL, started and stopped with nothing left over."""

from __future__ import annotations

import time

import httpx
import psutil
import psycopg

from runtime.postgres import EmbeddedPostgres
from runtime.prefect_server import PROJECT_ROOT, prefect_env, start_prefect_server
from runtime.processes import free_port


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_prefect_env():
    env = prefect_env("http://127.0.0.1:1234/api")
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:1234/api"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["PREFECT_RUNNER_POLL_FREQUENCY"] == "1"
    assert env["PYTHONPATH"].split(":")[0] == str(PROJECT_ROOT)


def test_prefect_server_on_embedded_postgres(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    started = time.monotonic()
    pg = EmbeddedPostgres.start(tmp_path / "pg", keep=False)
    postgres_seconds = time.monotonic() - started
    server = None
    try:
        pg.ensure_database("prefect")
        with psycopg.connect(pg.conninfo("prefect")) as conn:
            assert conn.execute("select 1").fetchone() == (1,)

        started = time.monotonic()
        server, api_url = start_prefect_server(
            port=free_port(), home=tmp_path / "home",
            database_url=pg.sqlalchemy_url("prefect", driver="postgresql+asyncpg"),
            log_path=tmp_path / "logs" / "prefect-server.log",
        )
        server_seconds = time.monotonic() - started
        print(f"embedded PostgreSQL {postgres_seconds:.1f}s, Prefect server {server_seconds:.1f}s")
        assert api_url.startswith("http://127.0.0.1:") and api_url.endswith("/api")
        assert httpx.get(f"{api_url}/health", timeout=5).json() is True

        with temporary_settings({PREFECT_API_URL: api_url}):
            with get_client(sync_client=True) as client:
                assert client.hello().status_code == 200
                assert client.read_flows() == []
                client.create_flow_from_name("runtime-smoke")
                assert [f.name for f in client.read_flows()] == ["runtime-smoke"]

        # Prefect's tables are in the embedded PostgreSQL, not in a SQLite file in its home.
        with psycopg.connect(pg.conninfo("prefect")) as conn:
            assert conn.execute("select name from flow").fetchall() == [("runtime-smoke",)]
        assert not list((tmp_path / "home").glob("*.db"))

        ours = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
        postmaster = psutil.Process(pg.pid)
    finally:
        if server is not None:
            server.stop()
        pg.stop()

    assert not server.alive()
    assert server.group_members() == []
    assert [p for p in ours if _alive(p)] == []
    assert not _alive(postmaster)
    assert not (tmp_path / "pg").exists()


def test_served_deployments_match_the_flows():
    from runtime.serve import DEPLOYMENTS, load_flows

    assert {f"{flow.name}/{flow.name}" for flow in load_flows()} == set(DEPLOYMENTS)
    assert "ensure-refunds-async/ensure-refunds-async" in DEPLOYMENTS
    assert "audit-ledger/audit-ledger" in DEPLOYMENTS
