"""``om-engine``: the command line (typer)."""
