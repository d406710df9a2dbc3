"""The embedded PostgreSQL: URLs each driver accepts, databases, restarts, cleanup."""

from __future__ import annotations

import asyncio
import json
import subprocess

import psutil
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

from runtime.postgres import EmbeddedPostgres, system_postgres_url


def _gone(pid: int) -> bool:
    """Exited: the postmaster is re-parented to PID 1, which reaps it a moment later."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _postgres_on(data_dir) -> list[psutil.Process]:
    """postgres processes serving ``data_dir`` (pg_ctl detaches them: they are not our children)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and not _gone(proc.pid) and str(data_dir) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


@pytest.fixture
def pg(tmp_path):
    server = EmbeddedPostgres.start(tmp_path / "pg", keep=False)
    yield server
    server.stop()


def test_ensure_database_and_every_driver_connects(pg):
    pg.ensure_database("orders")
    pg.ensure_database("orders")  # idempotent

    with psycopg.connect(pg.conninfo("orders")) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.execute("select extname from pg_extension where extname = 'pg_trgm'").fetchone() == ("pg_trgm",)
        assert conn.execute("select current_database()").fetchone() == ("orders",)

    # The store's driver (db.engine normalizes postgresql:// to postgresql+psycopg).
    engine = create_engine(pg.sqlalchemy_url("orders", driver="postgresql+psycopg"))
    with engine.connect() as conn:
        assert conn.execute(text("select 1")).scalar() == 1
    engine.dispose()

    # Prefect's driver: asyncpg takes the socket directory from ?host= with no password.
    async def via_asyncpg() -> int:
        engine = create_async_engine(pg.sqlalchemy_url("orders", driver="postgresql+asyncpg"))
        async with engine.connect() as conn:
            value = (await conn.execute(text("select 1"))).scalar()
        await engine.dispose()
        return value

    assert asyncio.run(via_asyncpg()) == 1
    assert pg.sqlalchemy_url("orders", driver="postgresql+asyncpg") == (
        f"postgresql+asyncpg://postgres@/orders?host={pg.socket_dir}"
    )


def test_keep_true_keeps_data_and_stop_stops_the_server(tmp_path):
    data = tmp_path / ".om-data" / "pg"
    server = EmbeddedPostgres.start(data, keep=True)
    pid = server.pid
    server.ensure_database("orders")
    with psycopg.connect(server.conninfo("orders"), autocommit=True) as conn:
        conn.execute("create table kept (x int); insert into kept values (42)")
    server.stop()
    server.stop()  # idempotent
    assert _gone(pid)
    assert _postgres_on(data) == []
    assert (data / "PG_VERSION").exists()

    # A process that held the server and was killed (no atexit) must not keep it running.
    dead = subprocess.Popen(["true"])
    dead.wait()
    server = EmbeddedPostgres.start(data, keep=True)
    handles = data / ".handle_pids.json"
    handles.write_text(json.dumps([dead.pid, *json.loads(handles.read_text())]))
    with psycopg.connect(server.conninfo("orders")) as conn:
        assert conn.execute("select x from kept").fetchone() == (42,)
    server.stop()
    assert _postgres_on(data) == []


def test_keep_false_deletes_the_data(tmp_path):
    data = tmp_path / "pg"
    server = EmbeddedPostgres.start(data, keep=False)
    pid = server.pid
    server.stop()
    assert _gone(pid)
    assert not data.exists()


def test_system_postgres_url_when_one_answers():
    url = system_postgres_url("om_runtime_test")
    if url is None:
        pytest.skip("no PostgreSQL with trust auth at 127.0.0.1:5432")
    assert url == "postgresql://postgres@127.0.0.1:5432/om_runtime_test"
    with psycopg.connect(url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.execute("select 1 from pg_extension where extname = 'pg_trgm'").fetchone() == (1,)


def test_a_path_with_spaces_is_refused_up_front(tmp_path):
    with pytest.raises(ValueError, match="whitespace"):
        EmbeddedPostgres.start(tmp_path / "my project" / "pg")
