"""The soak runs end to end on a short load and reports each part's memory (its growth is
a figure for the README, never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_a_short_soak_reports_memory_per_process_and_every_operation_completes(tmp_path):
    out = tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "OM_"))}  # its own stack
    done = subprocess.run([sys.executable, "-m", "bench", "--parts", "soak", "--soak-minutes", "0.5",
                           "--soak-rate", "2", "--out", str(out)],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())["figures"]
    started = figures["soak: operations started"]["value"]
    assert started >= 30  # 2 a second for 30 s, less what a slow machine drops
    assert figures["soak: operations completed"]["value"] == started
    assert figures["soak: operations failed"]["value"] == 0
    for part in ("Prefect server", "engine (executor + facade)", "PostgreSQL"):
        assert figures[f"soak: memory (PSS) of {part} after warm-up"]["value"] > 10  # MB: each part was measured
        assert figures[f"soak: memory (PSS) of {part} at the end"]["unit"] == "MB"


def test_the_second_half_slope_tells_a_leak_from_a_plateau():
    from bench.soak import SoakFigures

    def figures(values):
        return SoakFigures(minutes=10, rate=2, started=0, completed=0, failed=0, warm_index=2,
                           samples=[{"t": 60 * i, "engine": v} for i, v in enumerate(values)])

    leaking = figures([100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110])  # 1 MB a minute throughout
    levelled = figures([100, 110, 120, 125, 128, 130, 130, 130, 130, 130, 130])  # filled, then flat
    assert leaking.second_half_slope() == {"engine": 1.0}
    assert levelled.second_half_slope() == {"engine": 0.0}
    assert figures([100, 101]).second_half_slope() == {}  # too short to tell
