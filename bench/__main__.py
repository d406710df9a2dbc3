"""``python -m bench``: run the benchmarks, print a table and write the figures as JSON
(with the machine they ran on).

    python -m bench                                   # everything (about 40 minutes here)
    python -m bench --parts operations --executors warm --concurrent 1,10
    python -m bench --parts reconcile --reconcile-records 100000   # or OM_BENCH_RECONCILE_RECORDS
    python -m bench --parts scale --scale-callers 1,10,50,200      # stock serve, default, scaled out
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(add_completion=False)

PARTS = ("operations", "profile", "sweep", "store-scale", "faults", "soak", "reconcile", "scale")


@app.command()
def main(
    repeats: int = typer.Option(3, min=1, help="Each figure is the median over this many repeats."),
    samples: int = typer.Option(20, min=1, help="Requests per accept-latency sample set."),
    concurrent: str = typer.Option("1,10,50", help="Concurrency levels for the throughput runs, comma-separated."),
    executors: str = typer.Option("warm,serve", help="Executors to measure: warm (runtime.executor), serve (stock prefect.serve)."),
    parts: str = typer.Option(",".join(PARTS), help=f"Which benchmarks: {', '.join(PARTS)}."),
    sizes: str = typer.Option("1000,100000,1000000", help="store-scale: order summaries in the store, grown in this order."),
    faults: str = typer.Option("executor,prefect-server,store-postgres,facade,gateway-hang,gateway-timeout,gateway-5xx",
                               help="faults: which faults to inflict, one stack each."),
    callers: int = typer.Option(40, min=1, help="faults: concurrent callers, each asking for one 10.00 refund."),
    soak_minutes: float = typer.Option(30, min=0.1, help="soak: how long the steady load runs."),
    soak_rate: float = typer.Option(2.0, min=0.1, help="soak: operations started per second."),
    reconcile_records: int = typer.Option(100_000, min=100, envvar="OM_BENCH_RECONCILE_RECORDS",
                                          help="reconcile: gateway records seeded and reconciled."),
    scale_settings: str = typer.Option("stock serve,default,scaled out", help="scale: which settings, side by side."),
    scale_callers: str = typer.Option("1,10,50,200", help="scale: concurrent callers at each level."),
    scale_sizes: str = typer.Option("1000,100000,1000000",
                                    help="scale: order summaries the default's store is grown to, in this order ('' for none)."),
    scale_per_level: int = typer.Option(20, min=1, help="scale: operations per level at least (callers x rounds)."),
    out: Path = typer.Option(Path("bench/results.json"), help="Where the JSON figures go."),
) -> None:
    from bench.operations import Results, machine

    chosen = [p for p in parts.split(",") if p]
    unknown = set(chosen) - set(PARTS)
    if unknown:
        raise typer.BadParameter(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    results = Results(machine=machine())
    previous = json.loads(out.read_text()) if out.exists() else {}
    own_keys: dict[str, dict] = {}  # parts that keep their figures under a key of their own (reconcile)

    def save() -> None:  # after every part: a later part failing keeps what was measured
        document = dict(previous)  # other keys stay as they were
        if results.figures or "figures" not in document:  # a reconcile-only run leaves the other figures alone
            document.update(machine=results.machine, figures=results.figures)
        document.update(own_keys)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=2))

    if "operations" in chosen:
        from bench.operations import run

        ran = run(repeats=repeats, samples=samples, concurrent=tuple(int(c) for c in concurrent.split(",")),
                  executors=tuple(e for e in executors.split(",") if e))
        results.figures.update(ran.figures)
        save()
    if "profile" in chosen:
        from bench.profile import profile_one_operation

        results.figures.update(profile_one_operation(out.with_name("profile.txt")).figures)
        save()
    if "sweep" in chosen:
        from bench.batch_sweep import main_figures

        main_figures(results, repeats=repeats)  # 1,000 and 10,000 credit memos in one flow run, next to a plain loop
        save()
    if "store-scale" in chosen:
        from bench.store_scale import run as store_scale

        ran = store_scale(sizes=tuple(int(size) for size in sizes.split(",")), operations=100, repeats=repeats)
        results.figures.update(ran.figures)
        save()
    if "faults" in chosen:
        from bench.faults import run as run_faults

        fault_figures = run_faults(faults=tuple(f for f in faults.split(",") if f), callers=callers)
        for figures in fault_figures:
            for name, value, unit in figures.figures():
                results.add(f"fault {figures.fault}: {name}", float(value), unit)
        save()
        out.with_name("faults.json").write_text(json.dumps([f.as_row() for f in fault_figures], indent=2))
        _print_fault_table(fault_figures)
    if "soak" in chosen:
        from bench.soak import run as soak

        soaked = soak(minutes=soak_minutes, rate=soak_rate, warmup_seconds=min(300, soak_minutes * 60 / 6))
        note = f"{soaked.started} operations at {soak_rate}/s over {soak_minutes:g} min; {soaked.failed} failed"
        for part, (warm, end, growth) in soaked.growth().items():
            results.add(f"soak: memory (PSS) of {part} after warm-up", warm, "MB", note=note)
            results.add(f"soak: memory (PSS) of {part} at the end", end, "MB", note=f"{growth:+.1f}% since warm-up")
        for part, slope in soaked.second_half_slope().items():
            results.add(f"soak: growth of {part} over the second half", slope, "MB/min", note=note)
        out.with_name("soak.json").write_text(json.dumps(
            {"minutes": soak_minutes, "rate": soak_rate, "warm_index": soaked.warm_index, "samples": soaked.samples},
            indent=2))
        results.add("soak: operations started", soaked.started, "operations", note=note)
        results.add("soak: operations completed", soaked.completed, "operations", note=note)
        results.add("soak: operations failed", soaked.failed, "operations", note=note)
        save()
    if "reconcile" in chosen:
        from bench.reconcile import KEY, print_table
        from bench.reconcile import run as reconcile

        reconciled = reconcile(reconcile_records)  # fails unless the run found exactly the planted differences
        own_keys[KEY] = reconciled.as_json()
        save()
        print_table(reconciled)
    if "scale" in chosen:
        from bench.scale import KEY as SCALE_KEY
        from bench.scale import print_table as print_scale
        from bench.scale import run as scale

        scaled = scale(settings=tuple(x for x in scale_settings.split(",") if x),
                       callers=tuple(int(c) for c in scale_callers.split(",")),
                       sizes=tuple(int(x) for x in scale_sizes.split(",") if x), per_level=scale_per_level,
                       samples=samples)
        own_keys[SCALE_KEY] = scaled.as_json()
        save()
        print_scale(scaled)
    if not results.figures:
        save()
        Console().print(f"figures written to {out} (machine: {results.machine})")
        return
    table = Table(title="Order Management engine: background operations")
    for column in ("figure", "value", "unit", "floor", "note"):
        table.add_column(column)
    for name, figure in results.figures.items():
        table.add_row(escape(name), f"{figure['value']:.4f}", figure["unit"],
                      "" if figure["floor"] is None else f"{figure['floor']:.4f}", figure["note"])
    Console(width=200).print(table)
    save()
    Console().print(f"figures written to {out} (machine: {results.machine})")


def _print_fault_table(fault_figures) -> None:
    table = Table(title="What survives what: operations accepted while the fault struck")
    for column in ("fault", "Ensure Refunds accepted / Complete / Error", "refunded", "gateway refunds / rows",
                   "Ensure Funds accepted / Complete", "captured (gateway / rows)", "payment refunds accepted / Succeeded",
                   "payment-refunded", "duplicates", "ledger", "callers that retried", "runs", "all final after"):
        table.add_column(column)
    for f in fault_figures:
        table.add_row(f.fault, f"{f.accepted} / {f.complete} / {f.error}", str(f.refunded),
                      f"{f.gateway_refunds} / {f.refund_rows}", f"{f.funds_accepted} / {f.funds_complete}",
                      f"{f.captured} ({f.gateway_captures} / {f.capture_rows})",
                      f"{f.payment_refunds_accepted} / {f.payment_refunds_succeeded}", str(f.payment_refunded),
                      str(f.duplicated_keys), "holds" if not f.ledger_violations else f"{len(f.ledger_violations)} violations",
                      str(f.retried_callers), str(f.runs_created), f"{f.seconds_to_all_final} s")
    Console(width=240).print(table)


if __name__ == "__main__":
    app()
