"""The benchmark command runs end to end on tiny numbers (speed itself is never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_bench_command_prints_a_table_and_writes_the_figures(tmp_path):
    out = tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "OM_"))}  # its own stack
    done = subprocess.run([sys.executable, "-m", "bench", "--repeats", "1", "--samples", "2", "--concurrent", "2",
                           "--out", str(out)], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "background operations" in done.stdout and "figures written to" in done.stdout
    figures = json.loads(out.read_text())
    assert {"create_flow_run p50", "accept p50 (1 caller)", "accept p99 (5 callers)", "create->Complete (1 at a time)",
            "completed ops/s (2 concurrent)", "CPU s/op: Prefect server", "CPU s/op: executor (runtime.serve)",
            "CPU s/op: database (PostgreSQL)"} <= set(figures["figures"])
    assert figures["machine"]["cpus"] >= 1
    values = {name: figure["value"] for name, figure in figures["figures"].items()}
    assert all(value > 0 for value in values.values()), values
    assert figures["figures"]["accept p50 (1 caller)"]["floor"] == values["create_flow_run p50"]
