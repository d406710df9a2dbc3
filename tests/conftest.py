"""Session-wide real parts: embedded PostgreSQL, a local Prefect server on it, and the
store on each backend (SQLite and PostgreSQL: the machine's own at 127.0.0.1:5432 when
it answers, else the embedded one).

``OM_TEST_BACKENDS=sqlite`` (or ``postgresql``) runs one backend only, for quick loops.
"""

from __future__ import annotations

import os
import sys
import uuid

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Until the session server is up, nothing may talk to Prefect: an unset PREFECT_API_URL
# would silently start an ephemeral server per process.
os.environ["PREFECT_API_URL"] = "http://127.0.0.1:9/api"

BACKENDS = [b for b in os.environ.get("OM_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


@pytest.fixture(scope="session")
def embedded_postgres(tmp_path_factory):
    from runtime.postgres import EmbeddedPostgres

    server = EmbeddedPostgres.start(tmp_path_factory.mktemp("pg") / "data", keep=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prefect_api(embedded_postgres, tmp_path_factory):
    """A real Prefect server on embedded PostgreSQL, shared by the whole session."""
    from runtime.prefect_server import prefect_env, start_prefect_server
    from runtime.processes import free_port

    home = tmp_path_factory.mktemp("prefect-home")
    embedded_postgres.ensure_database("prefect")
    server, api_url = start_prefect_server(
        port=free_port(), home=home,
        database_url=embedded_postgres.sqlalchemy_url("prefect", driver="postgresql+asyncpg"),
        log_path=home / "server.log",
    )
    for key, value in prefect_env(api_url).items():
        if key.startswith("PREFECT_"):
            os.environ[key] = value
    os.environ["PREFECT_HOME"] = str(home)
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()  # Prefect read its settings at import time
    from blocks import CompositionBlock, SandboxGateway, StoreDatabase
    from compositions.saved import register_shipped

    for block in (CompositionBlock, SandboxGateway, StoreDatabase):
        block.register_type_and_schema()
    register_shipped()
    yield api_url
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # before the server goes, or the last logs have nowhere to go
    server.stop()


# localstripe's own entry point listens on every interface; tests keep it on loopback.
_LOCALSTRIPE_ON_LOOPBACK = (
    "import sys; from aiohttp import web; from localstripe.server import app; "
    "web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None)"
)


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory) -> str:
    """localstripe, a Stripe API double, on 127.0.0.1; its base URL (any ``sk_...`` key works).

    It accepts everything: it neither replays idempotency keys nor caps refunds, so what
    the tests show about money does not lean on the gateway."""
    from runtime.processes import ManagedProcess, free_port, wait_for_http

    port = free_port()
    process = ManagedProcess.start(
        [sys.executable, "-c", _LOCALSTRIPE_ON_LOOPBACK, str(port)], env=dict(os.environ),
        log_path=tmp_path_factory.mktemp("localstripe") / "localstripe.log", name="localstripe",
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base_url}/js.stripe.com/v3/", timeout=30, process=process)
        yield base_url
    finally:
        process.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def store_url(request, tmp_path_factory, embedded_postgres):
    """The store, migrated with Alembic, on one backend per parameter."""
    from db.migrate import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}"
    else:
        url = fresh_postgres_database(embedded_postgres, "om_test")
    upgrade(url)
    yield url
    if request.param != "sqlite":
        drop_postgres_database(url)


def fresh_postgres_database(embedded_postgres, prefix: str) -> str:
    """A new, empty database on the machine's PostgreSQL if it answers, else the embedded one."""
    from runtime.postgres import system_postgres_url

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = system_postgres_url(name)
    if url is None:
        embedded_postgres.ensure_database(name)
        url = embedded_postgres.sqlalchemy_url(name)
    return url


@pytest.fixture
def store(store_url, monkeypatch) -> str:
    """Point this process's store (db.engine defaults) at the backend under test."""
    from db.settings import get_store_settings

    monkeypatch.setenv("OM_DATABASE_URL", store_url)
    get_store_settings.cache_clear()
    yield store_url
    get_store_settings.cache_clear()


@pytest.fixture
def own_store(store_url, tmp_path, embedded_postgres, monkeypatch) -> str:
    """A new, empty store on the backend under test, for a test that must see no other
    test's records (or must not leave its own in the shared store)."""
    from db.migrate import upgrade
    from db.settings import get_store_settings

    url = (f"sqlite:///{tmp_path / 'own.db'}" if store_url.startswith("sqlite")
           else fresh_postgres_database(embedded_postgres, "om_own"))
    upgrade(url)
    monkeypatch.setenv("OM_DATABASE_URL", url)
    get_store_settings.cache_clear()
    yield url
    get_store_settings.cache_clear()
    if not url.startswith("sqlite"):
        drop_postgres_database(url)


@pytest.fixture
def session(store):
    from db.engine import session_scope

    with session_scope(store) as s:
        yield s


def drop_postgres_database(url: str) -> None:
    """Drop a test database (the machine's PostgreSQL outlives the session)."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    from db.engine import get_engine

    get_engine(url).dispose()
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(parsed.database)))
