"""The whole engine on one machine: embedded PostgreSQL, Prefect server, store, served
deployments and REST facade, started in order and stopped in reverse.

Used by ``om-engine up`` and by the end-to-end tests, so both run the same thing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
import json
from dataclasses import dataclass, field
from pathlib import Path

from runtime.processes import ManagedProcess, wait_for_http

RESTART_DELAYS = (1, 2, 5, 10)  # seconds before the 1st, 2nd, 3rd and 4th restart of one child
GIVE_UP_AFTER = 5  # deaths of one child within GIVE_UP_WINDOW: it is not going to stay up
GIVE_UP_WINDOW = 300  # seconds
_NS = 1_000_000_000  # times are time.monotonic_ns()


class ChildKeepsDying(RuntimeError):
    """A child of the stack died too often in a short time: restarting it again is pointless."""


@dataclass
class _Child:
    """A supervised child: how to start it again, and when it died lately."""

    process: ManagedProcess
    restart: Callable[[], ManagedProcess]
    deaths: list[int] = field(default_factory=list)  # monotonic_ns of each recent death
    restart_at: int | None = None  # monotonic_ns


@dataclass(frozen=True)
class StackConfig:
    data_dir: Path
    prefect_port: int = 4200
    api_port: int = 8443
    certfile: Path | None = None
    keyfile: Path | None = None
    token: str = ""
    prefect_api_url: str | None = None
    store_url: str | None = None
    extra_tokens: dict[str, list[str]] = field(default_factory=dict)  # token -> permissions
    # "warm": one process runs the facade and a warm executor (runtime.executor), which
    # takes the runs the facade creates at once; "warm-separate": the executor in its own
    # process, polling; "serve": stock prefect.serve beside the facade (for comparison).
    executor: str = "warm"
    executor_limit: int = 10
    # Executors in all: the warm one beside the facade, and the rest in processes of their
    # own, each taking due runs of the work pool ("warm" and "warm-separate" only).
    executors: int = 1
    # On stop, how long the executor's held runs may take to finish (its SIGTERM drain);
    # the stack waits that long and a little more before it kills the process.
    executor_drain_seconds: float = 30.0
    # Where the facade and a Prefect server of the stack's own listen: loopback unless told otherwise.
    host: str = "127.0.0.1"
    # A Prefect server of the stack's own requires an auth string (kept in the data directory),
    # so reaching its port is not enough to start a refund deployment behind the facade's back.
    prefect_auth: bool = True
    # The auth string itself, when the API processes of several hosts share one; None: the
    # one kept in the data directory (made on first start).
    prefect_auth_string: str | None = None
    # The shipped record-triggered automations (prefect.yaml's triggers:): "on" creates the
    # missing ones switched on, "off" switched off, None leaves automations alone.
    automations: str | None = None
    # Where the ProcessException automation posts (a custom-webhook block named om-operations
    # is made for it); without it, only an om-operations notification block made in the UI is used.
    notify_webhook_url: str | None = None
    # Prefect's API in this many processes (uvicorn workers); more than one needs redis_url.
    prefect_workers: int = 1
    # Prefect's messaging, event ordering and concurrency leases on Redis (redis://host:port/db),
    # its background services in a process apart: what lets API processes on several hosts
    # share one Prefect database. None: one process, in-memory messaging (the default).
    redis_url: str | None = None
    # This host runs Prefect's background services (exactly one host of a Prefect database should).
    prefect_services: bool = True
    # Prefect's database elsewhere (PostgreSQL), shared by the API processes of several hosts;
    # None: a database "prefect" on the embedded PostgreSQL.
    prefect_database_url: str | None = None

    def __post_init__(self):
        if self.prefect_workers < 1 or self.executors < 1:
            raise ValueError("prefect_workers and executors are at least 1")
        if self.prefect_workers > 1 and self.redis_url is None:
            raise ValueError("Prefect's API in several processes shares its messaging through Redis: give redis_url")
        if self.executors > 1 and self.executor == "serve":
            raise ValueError("several executors need a warm executor, not stock serve")
        own_server_only = {"--prefect-workers": self.prefect_workers > 1, "--redis-url": self.redis_url is not None,
                           "--no-prefect-services": not self.prefect_services,
                           "--prefect-database-url": self.prefect_database_url is not None,
                           "--prefect-auth-string": self.prefect_auth_string is not None}
        given = [name for name, set_ in own_server_only.items() if set_]
        if self.prefect_api_url is not None and given:
            raise ValueError(f"{', '.join(given)} shape a Prefect server of om up's own; PREFECT_API_URL names"
                             " another one, which this host only uses")
        if not self.prefect_services and self.redis_url is None:
            raise ValueError("--no-prefect-services leaves the services to another host, which hears this host's"
                             " events only through Redis: give --redis-url")


class Stack:
    """Start with :meth:`start`, stop with :meth:`stop` (idempotent, reverse order)."""

    def __init__(self, config: StackConfig):
        self.config = config
        self.postgres = None
        self.processes: list[ManagedProcess] = []
        self._children: dict[str, _Child] = {}
        self.api_url: str | None = config.prefect_api_url
        self.store_url: str | None = config.store_url
        self.env: dict[str, str] = {}
        # the auth string of the Prefect server (ours, or the one PREFECT_API_AUTH_STRING names)
        self.prefect_auth_string: str | None = os.environ.get("PREFECT_API_AUTH_STRING") or None

    @property
    def logs(self) -> Path:
        return self.config.data_dir / "logs"

    @property
    def facade_url(self) -> str:
        scheme = "https" if self.config.certfile else "http"
        return f"{scheme}://127.0.0.1:{self.config.api_port}"

    @property
    def prefect_ui_url(self) -> str:
        return self.api_url.removesuffix("/api") if self.api_url else ""

    @property
    def store_url_display(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.store_url).render_as_string(hide_password=True) if self.store_url else ""

    def start(self, log: Callable[[str], None] = print) -> None:
        from runtime.prefect_server import prefect_env

        cfg = self.config
        self.logs.mkdir(parents=True, exist_ok=True)
        own_prefect_on_embedded = self.api_url is None and cfg.prefect_database_url is None
        if own_prefect_on_embedded or self.store_url is None:
            from runtime.postgres import EmbeddedPostgres

            started = time.monotonic()
            self.postgres = EmbeddedPostgres.start(cfg.data_dir / "pg", keep=True)
            log(f"embedded PostgreSQL up in {time.monotonic() - started:.1f}s")
        if self.api_url is None:
            started = time.monotonic()
            self.prefect_auth_string = (
                (cfg.prefect_auth_string or _auth_string(cfg.data_dir / "prefect")) if cfg.prefect_auth else None)
            if cfg.prefect_database_url is None:
                self.postgres.ensure_database("prefect")
                database_url = self.postgres.sqlalchemy_url("prefect", driver="postgresql+asyncpg")
            else:
                from runtime.prefect_server import prefect_database_url

                database_url = prefect_database_url(cfg.prefect_database_url)
            if cfg.redis_url is None:
                self._start_prefect_server(database_url)
                log(f"Prefect server up at {self.api_url} in {time.monotonic() - started:.1f}s")
            else:
                self._start_scaled_prefect_server(database_url)
                from runtime.prefect_server import redacted_url

                log(f"Prefect API up at {self.api_url} in {cfg.prefect_workers} process(es) in"
                    f" {time.monotonic() - started:.1f}s, messaging on Redis {redacted_url(cfg.redis_url)}"
                    + ("; its services in a process apart" if cfg.prefect_services else "; services on another host"))
        if self.store_url is None:
            self.postgres.ensure_database("orders")
            self.store_url = self.postgres.sqlalchemy_url("orders")

        self.env = prefect_env(self.api_url, self.prefect_auth_string) | {
            "OM_DATABASE_URL": self.store_url, "OM_API_TOKEN": cfg.token, "OM_API_TOKENS": json.dumps(cfg.extra_tokens),
        }
        self._configure_this_process()
        from db.migrate import upgrade

        upgrade(self.store_url)
        log("store migrated")
        register_blocks(self.store_url, self.config.data_dir)
        log("blocks registered")

        if cfg.executor == "serve":
            self._start_serve_and_facade()
        elif cfg.executor == "warm-separate":
            self._start_executor_and_facade()
        else:
            self._start_engine()
        log(f"REST facade up at {self.facade_url}, deployments served ({cfg.executor})")
        if cfg.automations is not None:
            try:
                created = self.apply_automations(enabled=cfg.automations == "on")
                log(f"automations: {', '.join(created) or 'none missing'} created ({cfg.automations})")
            except Exception as exc:  # noqa: BLE001 - the engine runs without them; say so
                log(f"automations not applied ({type(exc).__name__}: {exc}); the deployments run without them")

    def _start_prefect_server(self, database_url: str) -> None:
        from runtime.prefect_server import start_prefect_server

        cfg = self.config

        def start_server() -> ManagedProcess:
            server, self.api_url = start_prefect_server(
                port=cfg.prefect_port, home=cfg.data_dir / "prefect", database_url=database_url,
                log_path=self.logs / "prefect-server.log", auth_string=self.prefect_auth_string, host=cfg.host,
            )
            return server

        self._supervise(start_server)

    def _start_scaled_prefect_server(self, database_url: str) -> None:
        """Prefect's API in N processes and, unless another host runs them, its services
        apart; messaging on Redis. Each is supervised on its own: an API restart leaves the
        services running and the other way round."""
        from runtime import prefect_server as ps

        cfg = self.config
        ps.claim_redis_database(cfg.redis_url, ps.prefect_database_identity(database_url))
        env = ps.scaled_server_env(port=cfg.prefect_port, home=cfg.data_dir / "prefect", database_url=database_url,
                                   redis_url=cfg.redis_url, auth_string=self.prefect_auth_string, host=cfg.host)
        ps.prepare_prefect_database(env)
        self.api_url = env["PREFECT_API_URL"]
        self._supervise(lambda: ps.start_prefect_api(env, workers=cfg.prefect_workers,
                                                     log_path=self.logs / "prefect-api.log"))
        if cfg.prefect_services:
            self._supervise(lambda: ps.start_prefect_services(env, log_path=self.logs / "prefect-services.log"))

    def apply_automations(self, *, enabled: bool) -> list[str]:
        """Create the shipped automations that are missing (runtime/automations.py)."""
        from prefect.client.orchestration import get_client

        from runtime.automations import apply_notification_automation, apply_shipped_automations, shipped_triggers

        with get_client(sync_client=True) as client:
            ids = {name: client.read_deployment_by_name(f"{name}/{name}").id for name in shipped_triggers()}
        created = apply_shipped_automations(ids, enabled=enabled)
        notifying = apply_notification_automation(enabled=enabled, webhook_url=self.config.notify_webhook_url)
        return created + ([notifying] if notifying else [])

    def _facade_args(self) -> list[str]:
        cfg = self.config
        args = ["--host", cfg.host]
        if cfg.certfile:
            args += ["--certfile", str(cfg.certfile), "--keyfile", str(cfg.keyfile)]
        return args

    def _executor_args(self) -> list[str]:
        cfg = self.config
        return ["--limit", str(cfg.executor_limit), "--drain-seconds", str(cfg.executor_drain_seconds)]

    def _executor_stop_seconds(self) -> float:
        # up to 5 s for its dispatcher to stop, the drain, up to 5 s for interrupted runs to ask
        # to be resumed, up to 15 s of joins, then the facade's own shutdown
        return self.config.executor_drain_seconds + 30

    def _start_engine(self) -> None:
        """The warm executor with the facade in one process: it applies the deployments
        before the facade answers, so a healthy facade means served deployments."""
        args = [sys.executable, "-m", "runtime.executor", *self._executor_args(),
                "--facade-port", str(self.config.api_port), *self._facade_args()]

        def start_engine() -> ManagedProcess:
            engine = ManagedProcess.start(args, env=self.env, log_path=self.logs / "engine.log", name="engine",
                                          stop_seconds=self._executor_stop_seconds())
            return _ready(engine, lambda: wait_for_http(f"{self.facade_url}/health", timeout=90, process=engine,
                                                        verify=False))

        self._supervise(start_engine)
        self._start_executors(range(2, self.config.executors + 1))

    def _start_executor_and_facade(self) -> None:
        self._start_executors(range(1, self.config.executors + 1))
        self._start_facade()

    def _start_executors(self, numbers: range) -> None:
        """Executors in processes of their own (executor.log, executor-2.log, ...): they
        take due runs of the work pool, each claimed by exactly one of them."""
        args = [sys.executable, "-m", "runtime.executor", *self._executor_args()]

        def starter(number: int) -> Callable[[], ManagedProcess]:
            suffix = "" if number == 1 else f"-{number}"

            def start_executor() -> ManagedProcess:
                log_path = self.logs / f"executor{suffix}.log"
                written = log_path.stat().st_size if log_path.exists() else 0  # a restart appends to the last one's log
                executor = ManagedProcess.start(args, env=self.env, log_path=log_path, name=f"executor{suffix}",
                                                stop_seconds=self._executor_stop_seconds())
                return _ready(executor, lambda: wait_for_log_line(executor, "warm executor", timeout=90, after=written))

            return start_executor

        for number in numbers:
            self._supervise(starter(number))

    def _start_facade(self) -> None:
        facade_args = [sys.executable, "-m", "api", "--port", str(self.config.api_port), *self._facade_args()]

        def start_facade() -> ManagedProcess:
            facade = ManagedProcess.start(facade_args, env=self.env, log_path=self.logs / "facade.log", name="REST facade")
            return _ready(facade, lambda: wait_for_http(f"{self.facade_url}/health", timeout=60, process=facade,
                                                        verify=False))

        self._supervise(start_facade)

    def _start_serve_and_facade(self) -> None:
        def start_serve() -> ManagedProcess:
            return ManagedProcess.start([sys.executable, "-m", "runtime.serve"], env=self.env,
                                        log_path=self.logs / "serve.log", name="served deployments")

        serve = self._supervise(start_serve)
        self._start_facade()
        wait_for_deployments(timeout=90, process=serve)

    def _supervise(self, start: Callable[[], ManagedProcess]) -> ManagedProcess:
        """Start a child now, and again whenever :meth:`supervise` finds it dead."""
        process = start()
        self.processes.append(process)
        self._children[process.name] = _Child(process=process, restart=start)
        return process

    def supervise(self, log: Callable[[str], None] = print) -> None:
        """Restart each child found dead, after a growing delay (RESTART_DELAYS, counted
        over its deaths in the last GIVE_UP_WINDOW seconds). Call it every half second or
        so. Raises :class:`ChildKeepsDying` when one died GIVE_UP_AFTER times in that window."""
        for name, child in self._children.items():
            if child.process.alive():
                continue
            now = time.monotonic_ns()  # per child: a restart before this one may have taken a while
            if child.restart_at is None:  # just found dead
                child.deaths = [t for t in child.deaths if now - t < GIVE_UP_WINDOW * _NS] + [now]
                if len(child.deaths) >= GIVE_UP_AFTER:
                    raise ChildKeepsDying(f"{name} died {len(child.deaths)} times in {GIVE_UP_WINDOW // 60} minutes;"
                                          f" last lines of {child.process.log_path}:\n{child.process.tail(20)}")
                delay = RESTART_DELAYS[len(child.deaths) - 1]
                child.restart_at = now + delay * _NS
                log(f"{name} exited with code {child.process.popen.returncode}; restarting it in {delay} s"
                    f" (death {len(child.deaths)} in {GIVE_UP_WINDOW // 60} minutes; log {child.process.log_path})")
            if now < child.restart_at:
                continue
            child.process.stop()  # whatever of its group outlived it
            try:
                started = time.monotonic()
                fresh = child.restart()
            except RuntimeError as exc:  # it died again while starting: count it, try later
                log(f"{name} did not come back: {str(exc).splitlines()[0]}")
                child.restart_at = None  # the old process is still the dead one: the next call counts a death
                continue
            child.restart_at = None
            self.processes[self.processes.index(child.process)] = fresh
            child.process = fresh
            log(f"{name} restarted (pid {fresh.pid}) in {time.monotonic() - started:.1f} s")

    def _configure_this_process(self) -> None:
        """This process registers blocks and loads the demo: point it at the same places."""
        os.environ["PREFECT_API_URL"] = self.api_url
        os.environ["OM_DATABASE_URL"] = self.store_url
        if self.prefect_auth_string:
            os.environ["PREFECT_API_AUTH_STRING"] = self.prefect_auth_string
        from prefect.context import refresh_global_settings_context

        from db.settings import get_store_settings

        refresh_global_settings_context()  # Prefect read its settings when first imported
        get_store_settings.cache_clear()

    def load_demo(self):
        from blocks import SandboxGateway
        from db.demo import DEMO_GATEWAY_BLOCK, load_demo
        from db.engine import session_scope

        SandboxGateway(outcomes_by_amount={"13.13": "decline", "66.60": "timeout"}).save(DEMO_GATEWAY_BLOCK, overwrite=True)
        with session_scope(self.store_url) as session:
            return load_demo(session)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        self._children.clear()
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None


def _auth_string(prefect_home: Path) -> str:
    """The Prefect server's auth string: made once per data directory (owner-only file),
    so a restart keeps it and the operator signs in to the UI with the same one."""
    import secrets

    path = prefect_home / "api-auth-string"
    if path.exists():
        return path.read_text().strip()
    prefect_home.mkdir(parents=True, exist_ok=True)
    value = f"om:{secrets.token_urlsafe(24)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value


def _ready(process: ManagedProcess, wait: Callable[[], object]) -> ManagedProcess:
    """``process`` once ``wait()`` returns; stopped (never left half-started) if it raises."""
    try:
        wait()
    except BaseException:
        process.stop()
        raise
    return process


def register_blocks(store_url: str, data_dir: Path | None = None) -> None:
    """Register this project's block types, save the store's URL as a block and, unless one
    exists, an accounting export into the data directory and each shipped composition."""
    from prefect.exceptions import ObjectNotFound

    import blocks
    from blocks import AccountingExport, StoreDatabase

    for name in blocks.__all__:
        getattr(blocks, name).register_type_and_schema()
    StoreDatabase(connection_url=store_url).save("store", overwrite=True)
    if data_dir is not None:
        try:
            AccountingExport.load("accounting")
        except (ValueError, ObjectNotFound):
            AccountingExport(path=str(data_dir / "accounting" / "refunds-ledger.json")).save("accounting")
    from compositions.saved import register_shipped
    register_shipped()


def wait_for_log_line(process: ManagedProcess, text: str, *, timeout: float, after: int = 0) -> None:
    """Wait until the process's log shows ``text`` past byte ``after``."""
    deadline = time.monotonic() + timeout
    while text not in process.log_path.read_bytes()[after:].decode(errors="replace"):
        if not process.alive():
            raise RuntimeError(f"{process.name} died:\n{process.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} did not log {text!r} within {timeout}s")
        time.sleep(0.2)


def wait_for_deployments(*, timeout: float, process: ManagedProcess | None = None) -> None:
    """Wait until every served deployment exists *and* has been polled since now, so a
    restart does not report ready on the previous run's deployments."""
    from datetime import UTC, datetime

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from runtime.serve import DEPLOYMENTS

    since = datetime.now(UTC)
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        for name in DEPLOYMENTS:
            while True:
                with contextlib.suppress(ObjectNotFound):
                    polled = client.read_deployment_by_name(name).last_polled
                    if polled is not None and polled >= since:
                        break
                if process is not None and not process.alive():
                    raise RuntimeError(f"the serve process died:\n{process.tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"deployment {name} was not served within {timeout}s")
                time.sleep(0.3)
