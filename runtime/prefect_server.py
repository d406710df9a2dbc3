"""A local Prefect server as a child process, on PostgreSQL (asyncpg URL) or SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from runtime.processes import ManagedProcess, wait_for_http

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Settings that would point a child at another server or database than the one chosen here.
_DATABASE_ENV = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")


def prefect_env(api_url: str, auth_string: str | None = None) -> dict[str, str]:
    """``os.environ`` plus what a Prefect client/runner of this project needs: the API URL
    (and the server's auth string, when it has one), no analytics, a 1 s runner poll, a
    short log batch interval, the project on PYTHONPATH."""
    env = dict(os.environ)
    if auth_string:
        env["PREFECT_API_AUTH_STRING"] = auth_string
    env.update(
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        PREFECT_RUNNER_POLL_FREQUENCY="1",  # seconds between a served runner's polls (default 10)
        PREFECT_LOGGING_TO_API_BATCH_INTERVAL="0.5",  # default 2 s
    )
    # glibc gives a thread that allocates while another holds an arena an arena of its own,
    # up to 8 per core, and keeps what is freed in each: the engine's run threads and the
    # server's workers then creep up (about 0.5 MB a minute in the soak). Two arenas stay
    # flat at no measurable cost (the GIL serializes most allocation anyway).
    env.setdefault("MALLOC_ARENA_MAX", "2")
    pythonpath = [str(PROJECT_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(pythonpath))
    return env


def start_prefect_server(
    *,
    port: int,
    home: Path,
    database_url: str | None,
    log_path: Path,
    timeout: float = 60,
    auth_string: str | None = None,
    host: str = "127.0.0.1",
) -> tuple[ManagedProcess, str]:
    """Run ``prefect server start`` on ``host``:``port`` and wait for ``/api/health``.

    ``database_url``: a ``postgresql+asyncpg://`` URL, or None for Prefect's SQLite in
    ``home``. ``auth_string``: Prefect's server auth (every API call but the health check
    needs it as HTTP Basic credentials; the UI asks for it). Returns the process and the
    API URL ``http://127.0.0.1:<port>/api``.
    """
    api_url = f"http://127.0.0.1:{port}/api"
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    env = prefect_env(api_url)
    for name in _DATABASE_ENV:
        env.pop(name, None)
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_UI_API_URL=api_url,
        PREFECT_SERVER_API_HOST=host,
        PREFECT_SERVER_API_PORT=str(port),
        # The V1 UI is the one whose automation form edits a run-deployment action's
        # parameters (the V2 UI of 3.8.8 lacks that editor): an operator builds the
        # record-triggered flows of the README there.
        PREFECT_SERVER_UI_V2_ENABLED="false",
    )
    env.pop("PREFECT_SERVER_API_AUTH_STRING", None)
    env.pop("PREFECT_API_AUTH_STRING", None)
    if auth_string:
        env["PREFECT_SERVER_API_AUTH_STRING"] = auth_string
        env["PREFECT_API_AUTH_STRING"] = auth_string  # the server's own clients
    # A run that finds its deployment's concurrency limit full is rescheduled this much later
    # (default 30 s): an operation should wait for a slot about as long as a slot is held.
    env.setdefault("PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS", "1")
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    process = ManagedProcess.start(
        [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
        env=env,
        log_path=log_path,
        name=f"prefect server :{port}",
    )
    started = time.monotonic()
    try:
        wait_for_http(f"{api_url}/health", timeout=timeout, process=process)
    except BaseException:
        process.stop()
        raise
    process.startup_seconds = time.monotonic() - started
    return process, api_url


# --- Prefect's API in several processes, its services apart, its messaging on Redis ----------

_REGISTER_BLOCK_TYPES = """
import asyncio
from prefect.server.database import provide_database_interface
from prefect.server.models.block_registration import run_block_auto_registration

async def main():
    async with await provide_database_interface().session() as session:
        await run_block_auto_registration(session=session)

asyncio.run(main())
"""


class SetupRefused(ValueError):
    """A scale-out setting that cannot work, said before anything is started."""


def redis_messaging_env(redis_url: str) -> dict[str, str]:
    """Prefect's settings that put its messaging, event ordering and concurrency leases on
    Redis (prefect-redis), which processes of one server share: ``redis://[user:password@]host:port/db``
    (or ``rediss://``). Redis streams outlive a Prefect database: give each server a database of its own."""
    if urlparse(redis_url).scheme not in ("redis", "rediss"):
        raise SetupRefused(f"a Redis URL is redis://host:port/db, not {redacted_url(redis_url)!r}")
    return {
        "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
        "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
        "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
        "PREFECT_REDIS_MESSAGING_URL": redis_url,  # the whole URL: its password and TLS too
    }


def redacted_url(url: str) -> str:
    """``url`` with its password, if any, shown as ``***`` (for logs and messages)."""
    parsed = urlparse(url)
    if not parsed.password:
        return url
    return parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)).geturl()


class RedisDatabaseRefused(SetupRefused):
    """The Redis database holds another Prefect database's messages (or something else's
    keys), or no Redis answers: a server that shared it would consume them."""


REDIS_OWNER_KEY = "om:prefect-database"


def prefect_database_url(url: str) -> str:
    """A PostgreSQL URL in the driver Prefect's server uses (asyncpg); API processes
    that share one database need PostgreSQL, not SQLite."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise SetupRefused(f"Prefect's API in several processes needs PostgreSQL, not {parsed.get_backend_name()}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def prefect_database_identity(database_url: str) -> str:
    """What tells one Prefect database from another, even at the same address: the
    PostgreSQL cluster's system identifier (new at each initdb), the database's name and oid."""
    import psycopg
    from sqlalchemy.engine import make_url

    conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, connect_timeout=10) as connection:
        system, name, oid = connection.execute(
            "SELECT (SELECT system_identifier FROM pg_control_system()), current_database(),"
            " (SELECT oid FROM pg_database WHERE datname = current_database())").fetchone()
    return f"{system}/{name}/{oid}"


def claim_redis_database(redis_url: str, owner: str) -> None:
    """Mark the Redis database as the messaging of the Prefect database ``owner``, or
    refuse it (:class:`RedisDatabaseRefused`) when another database, or anything else, uses
    it: Redis streams outlive a Prefect database, and a new server would consume what an
    old one left (measured: an old run's events replayed into a new database). The hosts
    of one server share the mark."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=10)
    try:
        if client.set(REDIS_OWNER_KEY, owner, nx=True):
            if client.dbsize() == 1:
                return
            client.delete(REDIS_OWNER_KEY)
            raise RedisDatabaseRefused(
                f"Redis database {redacted_url(redis_url)} already holds {client.dbsize()} keys of something else;"
                " give this Prefect server a Redis database of its own (redis://host:port/<db>), or empty that one")
        current = (client.get(REDIS_OWNER_KEY) or b"").decode()
    except redis.RedisError as exc:  # not answering, too slow, or no such database number
        raise RedisDatabaseRefused(f"no Redis answers at {redacted_url(redis_url)} ({exc})") from exc
    finally:
        client.close()
    if current != owner:
        raise RedisDatabaseRefused(
            f"Redis database {redacted_url(redis_url)} carries the messages of another Prefect database ({current});"
            " give this one a Redis database of its own, or empty that one if the other is gone for good")


def scaled_server_env(
    *, port: int, home: Path, database_url: str, redis_url: str, auth_string: str | None = None,
    host: str = "127.0.0.1",
) -> dict[str, str]:
    """The environment of every process of a scaled-out Prefect server (API and services):
    one PostgreSQL database (asyncpg URL), messaging on Redis, this host's API port."""
    api_url = f"http://127.0.0.1:{port}/api"
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    env = prefect_env(api_url)
    for name in (*_DATABASE_ENV, "PREFECT_SERVER_API_AUTH_STRING", "PREFECT_API_AUTH_STRING"):
        env.pop(name, None)
    for name in [name for name in env if name.startswith("PREFECT_REDIS_MESSAGING_")]:
        env.pop(name)  # an inherited host, port or URL would point Prefect at another Redis than the one claimed
    env.update(redis_messaging_env(redis_url), PREFECT_HOME=str(home), PREFECT_SERVER_UI_API_URL=api_url,
               PREFECT_SERVER_API_HOST=host, PREFECT_SERVER_API_PORT=str(port), PREFECT_SERVER_UI_V2_ENABLED="false",
               PREFECT_SERVER_DATABASE_CONNECTION_URL=database_url)
    env.setdefault("PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS", "1")
    if auth_string:
        env["PREFECT_SERVER_API_AUTH_STRING"] = auth_string
        env["PREFECT_API_AUTH_STRING"] = auth_string
    return env


def prepare_prefect_database(env: dict[str, str], *, timeout: float = 120) -> None:
    """Migrate Prefect's database and register its block types, once, before any API
    process starts (3.8.8's workers race on both on a fresh database, and the loser stops
    the whole server). Both are no-ops on a database another host prepared."""
    for step in ([sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                 [sys.executable, "-c", _REGISTER_BLOCK_TYPES]):
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"preparing Prefect's database failed ({' '.join(step[:5])}):\n{done.stderr[-3000:]}")


def start_prefect_api(
    env: dict[str, str], *, workers: int, log_path: Path, timeout: float = 120,
) -> ManagedProcess:
    """``prefect server start --workers N --no-services`` on a prepared database, once its
    health check answers (stopped, never left half-started, if it does not)."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    env = env | {"PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false", "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false"}
    host, port = env["PREFECT_SERVER_API_HOST"], env["PREFECT_SERVER_API_PORT"]
    api = ManagedProcess.start(
        [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", port, "--workers",
         str(workers), "--no-services"], env=env, log_path=log_path, name=f"prefect api :{port}")
    try:
        wait_for_http(f"{env['PREFECT_API_URL']}/health", timeout=timeout, process=api)
    except BaseException:
        api.stop()
        raise
    return api


def start_prefect_services(env: dict[str, str], *, log_path: Path) -> ManagedProcess:
    """Prefect's background services (scheduler, event persister, triggers, ...) in one
    process: one per Prefect database, on any host."""
    env = env | {"PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false"}
    return ManagedProcess.start([sys.executable, "-m", "prefect", "server", "services", "start"], env=env,
                                log_path=log_path, name="prefect services")


def start_scaled_prefect_server(
    *, port: int, home: Path, database_url: str, redis_url: str, workers: int, log_dir: Path, timeout: float = 120,
    auth_string: str | None = None, host: str = "127.0.0.1",
) -> tuple[ManagedProcess, ManagedProcess, str]:
    """Prefect's API in ``workers`` processes and its background services in one process
    apart, sharing PostgreSQL (``database_url``, asyncpg) and Redis (``redis_url``).
    Returns (API, services, API URL)."""
    env = scaled_server_env(port=port, home=home, database_url=database_url, redis_url=redis_url,
                            auth_string=auth_string, host=host)
    log_dir.mkdir(parents=True, exist_ok=True)
    prepare_prefect_database(env, timeout=timeout)
    api = start_prefect_api(env, workers=workers, log_path=log_dir / "prefect-api.log", timeout=timeout)
    try:
        services = start_prefect_services(env, log_path=log_dir / "prefect-services.log")
    except BaseException:
        api.stop()
        raise
    return api, services, env["PREFECT_API_URL"]
