"""``python -m bench [--repeats N] [--samples N] [--concurrent 1,10,50] [--out FILE]``: run the
benchmarks, print a table and write the figures as JSON (with the machine they ran on)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False)


@app.command()
def main(
    repeats: int = typer.Option(3, min=1, help="Each figure is the median over this many repeats."),
    samples: int = typer.Option(20, min=1, help="Requests per accept-latency sample set."),
    concurrent: str = typer.Option("1,10", help="Concurrency levels for the throughput runs, comma-separated."),
    out: Path = typer.Option(Path("bench/results.json"), help="Where the JSON figures go."),
) -> None:
    from bench.operations import run

    results = run(repeats=repeats, samples=samples, concurrent=tuple(int(c) for c in concurrent.split(",")))
    table = Table(title="Order Management engine: background operations")
    for column in ("figure", "value", "unit", "floor", "note"):
        table.add_column(column)
    for name, figure in results.figures.items():
        table.add_row(name, f"{figure['value']:.4f}", figure["unit"],
                      "" if figure["floor"] is None else f"{figure['floor']:.4f}", figure["note"])
    Console().print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": results.machine, "figures": results.figures}, indent=2))
    Console().print(f"figures written to {out} (machine: {results.machine})")


if __name__ == "__main__":
    app()
