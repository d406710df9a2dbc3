"""Flows for the warm executor's tests: they report what they see through this process's
memory (for executors started in the test process) or through files (for executors in
another process)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from prefect import flow, task

running = 0
most_running = 0
_lock = threading.Lock()
barrier: threading.Barrier | None = None


@task
def step(value: int) -> int:
    return value + 1


@flow(name="exec-add-one", persist_result=False)
def add_one(value: int = 1) -> int:
    """Adds one in a task run.

    Args:
        value: The number to add one to.
    """
    return step(value)


@flow(name="exec-overlap", persist_result=False)
def overlap(hold_seconds: float = 0.3) -> int:
    """Holds a slot for a while and records how many runs held one at once.

    Args:
        hold_seconds: How long to hold.
    """
    global running, most_running
    with _lock:
        running += 1
        most_running = max(most_running, running)
    try:
        time.sleep(hold_seconds)
    finally:
        with _lock:
            running -= 1
    return most_running


@flow(name="exec-meet", persist_result=False)
def meet(timeout: float = 20) -> bool:
    """Waits until the other runs of the barrier arrive (only possible if they run at once).

    Args:
        timeout: Seconds to wait.
    """
    barrier.wait(timeout)
    return True


@flow(name="exec-sleep", persist_result=False)
def sleep_for(seconds: float = 60, marker: str = "") -> None:
    """Sleeps in small steps, writing ``marker`` (a path) once started.

    Args:
        seconds: How long to sleep.
        marker: A file to create when the run has started.
    """
    if marker:
        Path(marker).write_text("started")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


@flow(name="exec-sleep-once", persist_result=False)
def sleep_once(seconds: float = 60, marker: str = "") -> str:
    """Sleeps the first time it runs; a resumed run (``marker`` already written) returns at
    once, so a test sees the same flow run carried through by the next executor.

    Args:
        seconds: How long the first attempt sleeps.
        marker: A file written by the first attempt.
    """
    path = Path(marker)
    if path.exists():
        path.write_text("resumed")
        return "resumed"
    path.write_text("started")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return "slept"


@flow(name="exec-recovered", persist_result=False)
def recovered(older_than_seconds: int = 300) -> None:
    """Stands in for the resolver: the executor starts it after marking runs Crashed.

    Args:
        older_than_seconds: As the resolver's parameter.
    """
