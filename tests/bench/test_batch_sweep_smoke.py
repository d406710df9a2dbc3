"""The batch sweep benchmark runs end to end on tiny numbers (speed itself is never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "import json; from bench.batch_sweep import run; print(json.dumps(run(sizes=(20,), repeats=1).figures))"


def test_batch_sweep_bench_measures_the_sweep_next_to_its_floor():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "OM_"))}  # its own PostgreSQL and Prefect
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    assert set(figures) == {"sweep memos/s (20 memos)", "sweep floor memos/s (20 memos)", "sweep / floor (20 memos)"}
    assert all(figure["value"] > 0 for figure in figures.values()), figures
    assert figures["sweep memos/s (20 memos)"]["floor"] == figures["sweep floor memos/s (20 memos)"]["value"]
