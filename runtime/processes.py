"""Child processes in their own process group, logging to a file, stopped as a group."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil


class ManagedProcess:
    """A ``subprocess.Popen`` in its own session (process group), stdout+stderr to ``log_path``.

    ``stop()`` signals the whole group, so the process's own children (a Prefect server's
    services, a runner's flow-run subprocesses) go with it.

    Being in its own session, the process would outlive us if we were killed (SIGKILL, a
    crashed test session): with ``die_with_parent`` (Linux) it gets SIGTERM when the
    *thread* that started it ends, so start long-lived processes from the main thread.
    """

    def __init__(self, popen: subprocess.Popen, *, log_path: Path, name: str, stop_seconds: float = 10):
        self.popen = popen
        self.log_path = log_path
        self.name = name
        self.stop_seconds = stop_seconds  # after SIGTERM, how long it may take before SIGKILL
        self.startup_seconds: float | None = None  # set by whoever waits for it to be ready

    @property
    def pid(self) -> int:
        return self.popen.pid

    @classmethod
    def start(
        cls, args: list[str], *, env: dict[str, str], log_path: Path, name: str, die_with_parent: bool = True,
        stop_seconds: float = 10,
    ) -> ManagedProcess:
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                args,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_parent_death_signal(os.getpid()) if die_with_parent else None,
            )
        return cls(popen, log_path=log_path, name=name, stop_seconds=stop_seconds)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)  # the session leader's pid is the group id

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM to the group, wait up to ``timeout`` s (default: the process's
        ``stop_seconds``), then SIGKILL the group. Idempotent."""
        timeout = self.stop_seconds if timeout is None else timeout
        if self.alive():
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        # Children that outlived the leader (or ignored SIGTERM) still hold the group id.
        deadline = time.monotonic() + 5
        while True:
            self._signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(0.05)
            if (not self.alive() and not self.group_members()) or time.monotonic() > deadline:
                break

    def group_members(self) -> list[psutil.Process]:
        """Live (non-zombie) processes in this process's group, the leader included."""
        members = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if os.getpgid(proc.pid) == self.popen.pid and proc.status() != psutil.STATUS_ZOMBIE:
                    members.append(proc)
        return members

    def tail(self, n: int = 50) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 256 * 1024))
                data = f.read()
        except FileNotFoundError:
            return ""
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-n:])

    def __repr__(self) -> str:
        state = "alive" if self.alive() else f"exited {self.popen.returncode}"
        return f"ManagedProcess({self.name!r}, pid={self.pid}, {state}, log={str(self.log_path)!r})"


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()  # resolved before any fork: the hook below only calls it
_PR_SET_PDEATHSIG = 1


def _parent_death_signal(parent_pid: int):
    """A preexec_fn asking the kernel to SIGTERM the child when its parent goes away."""
    if _PRCTL is None:
        return None

    def hook() -> None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(
    url: str,
    *,
    timeout: float,
    process: ManagedProcess | None = None,
    verify: bool | str = True,
) -> httpx.Response:
    """Poll ``url`` until it answers 2xx; RuntimeError (with the log tail) if ``process``
    died or ``timeout`` s passed."""
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    # A proxy from the environment must not sit between us and a local server.
    local = httpx.URL(url).host in ("127.0.0.1", "localhost", "::1")
    with httpx.Client(verify=verify, timeout=2.0, trust_env=not local) as client:
        while True:
            if process is not None and not process.alive():
                raise RuntimeError(
                    f"{process.name} exited with code {process.popen.returncode} before {url} answered;"
                    f" last lines of {process.log_path}:\n{process.tail()}"
                )
            try:
                response = client.get(url)
                if response.is_success:
                    return response
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                detail = f"; last lines of {process.log_path}:\n{process.tail()}" if process is not None else ""
                raise RuntimeError(f"{url} did not answer 2xx within {timeout:.0f} s ({last}){detail}")
            time.sleep(0.1)
