"""``python -m api``: serve the facade with uvicorn, over TLS when given a certificate."""

import typer
import uvicorn

from api.limits import MAX_REQUEST_HEAD_BYTES


def main(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8443, help="Port to listen on."),
    certfile: str = typer.Option(None, help="TLS certificate (PEM); serves https when given."),
    keyfile: str = typer.Option(None, help="TLS private key (PEM)."),
) -> None:
    uvicorn.run("api.main:app", host=host, port=port, ssl_certfile=certfile, ssl_keyfile=keyfile, log_level="warning",
                h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES)


if __name__ == "__main__":
    typer.run(main)
