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
                           "--parts", "operations,profile", "--out", str(out)],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "background operations" in done.stdout and "figures written to" in done.stdout
    figures = json.loads(out.read_text())
    for executor in ("warm executor", "stock serve"):
        assert {f"create_flow_run p50 [{executor}]", f"accept p50, 1 caller [{executor}]",
                f"accept p99, 5 callers [{executor}]", f"create->Complete p50, 1 at a time [{executor}]",
                f"completed ops/s, 2 concurrent [{executor}]", f"CPU s/op: Prefect server [{executor}]",
                f"CPU s/op: PostgreSQL, store [{executor}]", f"Prefect DB per op: events [{executor}]",
                } <= set(figures["figures"]), sorted(figures["figures"])
        floor = figures["figures"][f"accept p50, 1 caller [{executor}]"]["floor"]
        assert floor == figures["figures"][f"create_flow_run p50 [{executor}]"]["value"]
    assert "CPU s/op: executor (warm, with the idle facade) [warm executor]" in figures["figures"]
    assert "CPU s/op: executor (prefect.serve + flow-run processes) [stock serve]" in figures["figures"]
    assert figures["figures"]["speed-up, ops/s at 2 concurrent (warm / stock serve)"]["value"] > 0
    assert 0 < figures["figures"]["profile: share waiting on Prefect API (HTTP)"]["value"] < 1
    assert (out.parent / "profile.txt").read_text().count("ensure_refunds") >= 1
    assert figures["machine"]["cpus"] >= 1
    timings = {name: f["value"] for name, f in figures["figures"].items() if f["unit"] in ("s", "ops/s", "x")
               and not name.startswith("CPU")}  # a CPU difference can round to 0 on tiny N
    assert all(value > 0 for value in timings.values()), timings
