"""The sandbox gateway's connection to its books, and their tables, created where missing.

The sandbox is a gateway, not part of the store: it opens its own engine (with the same
SQLite and PostgreSQL settings as the store's, ``db.engine``) on the URL it is given, by
default the store's (``OM_DATABASE_URL``), where the store's migrations 0001 and 0002
created its tables; on any other database it creates them itself.
"""

from __future__ import annotations

import functools
import os

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url

from gateways.sandbox_ledger import metadata

DEFAULT_URL = "sqlite:///./om-store.db"  # the store's default (db.settings)


def books_url(url: str | None = None) -> str:
    """``url``, else the store's (``OM_DATABASE_URL``), with this project's drivers."""
    return _normalize_url(url or os.environ.get("OM_DATABASE_URL") or DEFAULT_URL)


def books_engine(url: str | None = None) -> Engine:
    """The process-wide engine of the sandbox's books at ``url`` (see ``books_url``); the
    first call per database creates the tables missing there."""
    return _engine_for(books_url(url))


def _normalize_url(url: str) -> str:
    """The drivers this project ships: psycopg 3 for PostgreSQL, pysqlite for SQLite."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+asyncpg"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername in ("sqlite", "sqlite+aiosqlite"):
        parsed = parsed.set(drivername="sqlite+pysqlite")
    return parsed.render_as_string(hide_password=False)


@functools.cache
def _engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _serialize_sqlite_writers(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Two processes starting on an empty database must not both create the tables.
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('om-sandbox-gateway-books'))"))
        metadata.create_all(connection, checkfirst=True)
        for table in metadata.sorted_tables:  # indexes added since the tables were made
            for index in table.indexes:
                index.create(connection, checkfirst=True)
    return engine


def _serialize_sqlite_writers(engine: Engine) -> None:
    """SQLite has no row locks: take the write lock when a transaction begins (BEGIN
    IMMEDIATE), so two bookings under one idempotency key cannot interleave."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # let SQLAlchemy's begin event drive BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
