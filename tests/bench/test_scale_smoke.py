"""The scale benchmark runs end to end on tiny numbers: the default and the scaled-out
setting side by side, and the default's store grown (speed itself is never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_answers():
    import redis

    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/10").ping()
    except redis.ConnectionError:
        pytest.skip("the scaled-out setting needs the machine's Redis")


def test_scale_bench_measures_each_setting_at_each_level_and_the_grown_store(redis_answers, tmp_path):
    out = tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "OM_"))}  # stacks of its own
    done = subprocess.run([sys.executable, "-m", "bench", "--parts", "scale", "--samples", "2",
                           "--scale-settings", "default,scaled out", "--scale-callers", "1,2", "--scale-sizes", "1000",
                           "--scale-per-level", "2", "--out", str(out)],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Scale: settings side by side" in done.stdout
    scale = json.loads(out.read_text())["scale"]
    levels = {(x["setting"], x["callers"], x["store_size"]): x for x in scale["levels"]}
    assert set(levels) == {("default", 1, None), ("default", 2, None), ("scaled out", 1, None),
                           ("scaled out", 2, None), ("default", 10, 1000)}, sorted(levels)
    for level in levels.values():
        assert level["errors"] == 0 and level["operations"] == max(level["callers"], 2), level
        assert 0 < level["accept_p50"] <= level["accept_p95"] and 0 < level["complete_p50"] <= level["complete_p95"]
        assert level["ops_per_second"] > 0 and level["prefect_commits_per_op"] > 0
    scaled = levels[("scaled out", 2, None)]["cpu_per_op"]
    assert {"prefect api", "prefect services", "engine", "executor-2"} <= set(scaled), sorted(scaled)
    assert "prefect server" in levels[("default", 2, None)]["cpu_per_op"]
    for setting in ("default", "scaled out"):
        assert set(scale["floors"][setting]) == {"create_flow_run p50, 1 caller", "accept p50, 1 caller",
                                                 "create_flow_run p50, 5 callers", "accept p50, 5 callers"}
