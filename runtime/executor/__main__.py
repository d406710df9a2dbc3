"""``python -m runtime.executor``: a warm executor, alone or with the REST facade in the
same process (then runs the facade creates are taken at once, not at the next poll).

    PREFECT_API_URL=... OM_DATABASE_URL=... python -m runtime.executor --limit 10
    PREFECT_API_URL=... OM_DATABASE_URL=... python -m runtime.executor --facade-port 8443

SIGTERM or Ctrl-C drains: nothing new is claimed, held runs finish (up to --drain-seconds);
any still going are handed back (AwaitingRetry) for the next executor to resume.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import timedelta

import typer


def main(
    limit: int = typer.Option(10, min=1, help="Flow runs at a time in this process."),
    work_pool: str = typer.Option("om-warm", help="Work pool whose runs this executor takes."),
    poll_seconds: float = typer.Option(0.15, min=0.01, max=0.2, help="Seconds between polls (a read)."),
    drain_seconds: float = typer.Option(30.0, min=0, help="On SIGTERM, how long held runs may take to finish."),
    orphan_grace_seconds: float = typer.Option(15.0, min=3, help="A run held by no live executor for this long is resumed."),
    max_orphan_resumes: int = typer.Option(3, min=0, help="A run whose executor died under it this often is Crashed instead."),
    deployment_name: str = typer.Option(None, help="Name the deployments <flow>/<this> instead of <flow>/<flow>."),
    flows_module: str = typer.Option(None, help="Serve the flows of this module instead of the flows package."),
    recovery_flow: str = typer.Option("resolve-gateway-outcomes", help="Flow run at once after runs are marked Crashed ('' for none)."),
    facade_port: int = typer.Option(None, help="Also serve the REST facade on this port, in this process."),
    host: str = typer.Option("127.0.0.1", help="The facade's address."),
    certfile: str = typer.Option(None, help="The facade's TLS certificate (PEM)."),
    keyfile: str = typer.Option(None, help="The facade's TLS private key (PEM)."),
) -> None:
    from runtime.executor import ExecutorSettings, WarmExecutor
    from runtime.executor.core import logger
    from runtime.serve import served

    executor = WarmExecutor(served(deployment_name=deployment_name, module_name=flows_module), ExecutorSettings(
        work_pool=work_pool, limit=limit, poll_seconds=poll_seconds, drain_seconds=drain_seconds,
        orphan_grace=timedelta(seconds=orphan_grace_seconds), max_orphan_resumes=max_orphan_resumes, recovery_flow=recovery_flow or None,
    ))
    executor.start()
    try:
        if facade_port is None:
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            stop.wait()
        else:
            import uvicorn

            from api.limits import MAX_REQUEST_HEAD_BYTES
            from api.operations import on_operation_created

            on_operation_created(executor.offer)
            config = uvicorn.Config("api.main:app", host=host, port=facade_port, ssl_certfile=certfile,
                                    ssl_keyfile=keyfile, log_level="warning",
                                    h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES)
            uvicorn.Server(config).run()  # returns after SIGTERM/SIGINT, once requests are answered
    finally:
        executor.stop()
        stuck = executor.active_run_ids()
        if stuck:
            # Threads blocked in a call would keep this process alive (the pool's threads are
            # joined at exit) with no heartbeat, and a late return could act on a run another
            # executor has resumed since: end the process now; the resumed runs look up first.
            logger.warning("exiting with %d runs still blocked; they are resumed elsewhere", len(stuck))
            logging.shutdown()  # flush what was logged: os._exit skips the interpreter's cleanup
            os._exit(1)


if __name__ == "__main__":
    typer.run(main)
