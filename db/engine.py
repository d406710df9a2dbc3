"""Engines and sessions for the store, on PostgreSQL or SQLite by configuration."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from db.settings import get_store_settings


def normalize_url(url: str) -> str:
    """Pick the drivers this project ships: psycopg 3 for PostgreSQL, pysqlite for SQLite."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+asyncpg"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername in ("sqlite", "sqlite+aiosqlite"):
        parsed = parsed.set(drivername="sqlite+pysqlite")
    return parsed.render_as_string(hide_password=False)


def get_engine(url: str | None = None, *, pool: str = "shared") -> Engine:
    """The process-wide engine for ``url`` (default: the configured store URL).

    ``pool``: a name other than "shared" gets an engine of its own with a connection or two
    on PostgreSQL, for work that must not queue behind the operations for a connection
    (the executor's heartbeat)."""
    return _engine_for(normalize_url(url or get_store_settings().database_url), pool)


@functools.cache
def _engine_for(url: str, pool: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _serialize_sqlite_writers(engine)
    elif pool == "shared":
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=1, max_overflow=1)
    return engine


def _serialize_sqlite_writers(engine: Engine) -> None:
    """SQLite has no row locks: take the write lock when a transaction begins
    (BEGIN IMMEDIATE), so check-then-reserve cannot interleave between processes."""

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


@event.listens_for(Session, "do_orm_execute")
def _locked_reads_are_fresh(state) -> None:
    """A row read FOR UPDATE always replaces what the session already holds for it.

    Without this, an object loaded before its lock was taken (say, to find which order to
    lock) keeps its stale attributes: the SELECT ... FOR UPDATE waits for the other
    writer, then its fresh values are dropped by the identity map, and an increment made
    on the stale value loses the other writer's update. Found by a test where two partial
    refunds of one payment raced on PostgreSQL.
    """
    if state.is_select and getattr(state.statement, "_for_update_arg", None) is not None:
        state.update_execution_options(populate_existing=True)


@contextmanager
def session_scope(url: str | None = None, *, pool: str = "shared") -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error (nothing half-written)."""
    with Session(get_engine(url, pool=pool), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
