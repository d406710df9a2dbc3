"""ManagedProcess, free_port and wait_for_http on plain OS processes (no Prefect, no PostgreSQL)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from runtime.processes import ManagedProcess, free_port, wait_for_http


def _group(pgid: int) -> list[psutil.Process]:
    """Live processes of group ``pgid`` (zombies count as gone: PID 1 reaps them later)."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def test_stop_takes_the_whole_group_and_is_idempotent(tmp_path):
    proc = ManagedProcess.start(
        ["sh", "-c", "echo hello; echo oops >&2; sleep 60 & sleep 60"],
        env={"PATH": "/usr/bin:/bin"}, log_path=tmp_path / "logs" / "p.log", name="sleeper",
    )
    deadline = time.monotonic() + 5
    while len(_group(proc.pid)) < 3 and time.monotonic() < deadline:  # sh + two sleeps
        time.sleep(0.05)
    assert proc.alive()
    assert len(_group(proc.pid)) == 3
    assert "hello" in proc.tail() and "oops" in proc.tail()

    proc.stop(timeout=5)
    assert not proc.alive()
    assert _group(proc.pid) == []
    proc.stop()  # again: no error


def test_stop_kills_what_ignores_sigterm(tmp_path):
    proc = ManagedProcess.start(
        ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"],
        env={"PATH": "/usr/bin:/bin"}, log_path=tmp_path / "p.log", name="stubborn",
    )
    while "ready" not in proc.tail():
        time.sleep(0.05)
    started = time.monotonic()
    proc.stop(timeout=0.5)
    assert not proc.alive()
    assert time.monotonic() - started < 5
    assert _group(proc.pid) == []


def test_tail_keeps_the_last_lines(tmp_path):
    proc = ManagedProcess.start(
        [sys.executable, "-c", "for i in range(200): print(i)"],
        env={}, log_path=tmp_path / "p.log", name="counter",
    )
    proc.popen.wait(10)
    assert proc.tail(3).splitlines() == ["197", "198", "199"]
    assert not proc.alive()


def test_wait_for_http_waits_for_a_2xx(tmp_path):
    port = free_port()
    proc = ManagedProcess.start(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)],
        env={}, log_path=tmp_path / "http.log", name="http.server",
    )
    try:
        response = wait_for_http(f"http://127.0.0.1:{port}/", timeout=20, process=proc)
        assert response.status_code == 200
        with pytest.raises(RuntimeError, match="did not answer 2xx"):
            wait_for_http(f"http://127.0.0.1:{port}/missing", timeout=0.5, process=proc)
    finally:
        proc.stop()


def test_wait_for_http_reports_a_dead_process_with_its_log(tmp_path):
    proc = ManagedProcess.start(
        [sys.executable, "-c", "import sys; print('cannot start: no config'); sys.exit(3)"],
        env={}, log_path=tmp_path / "dead.log", name="doomed",
    )
    with pytest.raises(RuntimeError, match="(?s)doomed exited with code 3.*cannot start: no config"):
        wait_for_http(f"http://127.0.0.1:{free_port()}/", timeout=30, process=proc)


def test_children_die_with_a_killed_parent(tmp_path):
    """A parent killed without cleanup (SIGKILL) does not leave its managed process behind."""
    script = (
        "import sys, time; from pathlib import Path;"
        "from runtime.processes import ManagedProcess;"
        f"p = ManagedProcess.start(['sleep', '60'], env={{'PATH': '/usr/bin:/bin'}}, log_path=Path({str(tmp_path / 's.log')!r}), name='s');"
        "print(p.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    child = psutil.Process(int(parent.stdout.readline()))
    assert child.is_running()
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while _group(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _group(child.pid) == []


@pytest.mark.parametrize(("stop_seconds", "clean"), [(6.0, True), (0.5, False)])
def test_stop_waits_the_processs_own_stop_seconds_for_a_drain(tmp_path, stop_seconds, clean):
    """A process that drains for 2 s on SIGTERM (as the executor finishes its held runs)
    exits by itself when its stop_seconds allow that, and is killed when they do not."""
    script = "import signal, sys, time\n" \
             "def drain(*_):\n    time.sleep(2)\n    print('drained', flush=True)\n    sys.exit(0)\n" \
             "signal.signal(signal.SIGTERM, drain)\nprint('ready', flush=True)\ntime.sleep(60)\n"
    proc = ManagedProcess.start([sys.executable, "-c", script], env={"PATH": os.environ["PATH"]},
                                log_path=tmp_path / "d.log", name="drainer", stop_seconds=stop_seconds)
    deadline = time.monotonic() + 10
    while "ready" not in proc.tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.stop()
    assert not proc.alive()
    assert ("drained" in proc.tail(), proc.popen.returncode == 0) == (clean, clean)
