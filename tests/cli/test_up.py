"""``om-engine up`` as a user runs it: a subprocess on a fresh data directory, driven
only through what it prints, stopped with Ctrl-C (SIGINT), then started again on the
same data directory to show the data is kept between starts.

Plain HTTP (no TLS); the embedded PostgreSQL, a local Prefect server, the served
deployments and the REST facade are all the CLI's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import psutil
import pytest

from runtime.processes import free_port

pytestmark = pytest.mark.e2e

BANNER = "Order Management engine is up"
LAST_LINE = "Ctrl-C stops everything."  # printed last, with or without --demo
STARTUP_TIMEOUT = 180
OPERATION_TIMEOUT = 120
EXIT_TIMEOUT = 60
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def _om_engine() -> str:
    beside = Path(sys.executable).parent / "om-engine"
    found = str(beside) if beside.exists() else shutil.which("om-engine")
    if found is None:
        pytest.fail("om-engine is not installed: uv pip install -e . --no-deps")
    return found


def _child_env() -> dict[str, str]:
    """The test session's environment, minus anything pointing at another server or store."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "OM_DATABASE_URL")}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env


def _logs(data_dir: Path, lines: int = 150) -> str:
    parts = []
    for path in sorted((data_dir / "logs").glob("*.log")):
        text = path.read_text(errors="replace").splitlines()
        parts.append(f"----- {path} (last {lines} lines) -----\n" + "\n".join(text[-lines:]))
    return "\n".join(parts) or f"(no logs in {data_dir / 'logs'})"


def _mentions(cmdline: list[str], data_dir: Path, ports: tuple[int, ...]) -> bool:
    if any(str(data_dir) in arg for arg in cmdline):
        return True
    for port in ports:
        p = str(port)
        if any(arg == p or arg.endswith(f":{p}") or f":{p}/" in arg or arg.endswith(f"={p}") for arg in cmdline):
            return True
    return False


def _ours(data_dir: Path, ports: tuple[int, ...]) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line mentions the data dir or a port."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if _mentions(proc.info["cmdline"] or [], data_dir, ports):
                found.append(proc)
    return found


def _alive(proc: psutil.Process) -> bool:
    try:  # is_running() also compares the creation time, so a reused pid is not "ours"
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} ({proc.username()}, {proc.status()}): {' '.join(proc.cmdline())[:300]}"
    except psutil.Error as exc:
        return f"pid {proc.pid}: {type(exc).__name__}"


def _listeners(ports: tuple[int, ...]) -> list[str]:
    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.Error:
        return []
    return [f"{c.laddr} pid={c.pid}" for c in conns if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in ports]


class Engine:
    """One ``om-engine up`` subprocess; its stdout (and stderr) read by a thread."""

    def __init__(self, data_dir: Path, prefect_port: int, api_port: int, *, demo: bool, cwd: Path):
        self.data_dir = data_dir
        self.ports = (prefect_port, api_port)
        args = [_om_engine(), "up", "--data-dir", str(data_dir),
                "--prefect-port", str(prefect_port), "--api-port", str(api_port)]
        if demo:
            args.insert(2, "--demo")
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.seen: set[psutil.Process] = set()  # everything it started, noted while it ran
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=_child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace", start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # to EOF, so the pipe never fills while it stops
            self._queue.put(ANSI.sub("", line.rstrip("\n")))
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def _drain(self, timeout: float) -> bool:
        """Move what was read into ``lines``; False at EOF."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            return True
        while line is not None:
            self.lines.append(line)
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return True
        self._queue.put(None)  # keep the EOF marker for later calls
        return False

    def wait_until_up(self, *, demo: bool) -> float:
        """Read stdout until the banner and (with ``demo``) the demo's curl commands; seconds taken."""
        deadline = self.started + STARTUP_TIMEOUT

        def ready() -> bool:
            text = self.output
            if BANNER not in text or LAST_LINE not in text.split(BANNER, 1)[1]:
                return False
            return not demo or "ensure-refunds-async" in text and "sobjects/OrderPaymentSummary/" in text

        while not ready():
            more = self._drain(0.2)
            if not more or self.proc.poll() is not None:
                self._drain(1)
                pytest.fail(
                    f"om-engine up exited with {self.proc.poll()} before it was up; its output:\n{self.output}\n"
                    f"{_logs(self.data_dir)}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"om-engine up did not print the banner and demo commands within {STARTUP_TIMEOUT}s; "
                    f"its output:\n{self.output}\n{_logs(self.data_dir)}"
                )
        elapsed = time.monotonic() - self.started
        self.note_processes()
        return elapsed

    def wait_for_line(self, text: str, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if not self._drain(0.2) or time.monotonic() > deadline:
                pytest.fail(f"om-engine up did not print {text!r}; its output:\n{self.output}\n{_logs(self.data_dir)}")

    def note_processes(self) -> None:
        """Remember its process tree and the embedded PostgreSQL's (re-parented to pid 1)."""
        roots = _ours(self.data_dir, self.ports)
        with contextlib.suppress(psutil.Error):
            roots.append(psutil.Process(self.proc.pid))
        for root in roots:
            with contextlib.suppress(psutil.Error):
                self.seen.add(root)
                self.seen.update(root.children(recursive=True))

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to its process group; wait for it to exit; its exit code."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            code = self.proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._drain(0.5)
            pytest.fail(f"om-engine up did not exit within {EXIT_TIMEOUT}s of SIGINT; its output:\n{self.output}")
        deadline = time.monotonic() + 10  # to EOF, unless something it left behind holds the pipe
        drained = True
        while drained and time.monotonic() < deadline:
            drained = self._drain(0.2)
        return code

    def left_behind(self, timeout: float = 5) -> list[str]:
        """What is still running ``timeout`` s after it exited (zombies waiting to be reaped don't count)."""
        deadline = time.monotonic() + timeout
        while True:
            procs = {p for p in self.seen if _alive(p)} | set(_ours(self.data_dir, self.ports))
            left = [_describe(p) for p in sorted(procs, key=lambda p: p.pid)] + _listeners(self.ports)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    def kill(self) -> None:
        """Clean up after a failed test: the CLI, then anything it left running."""
        if self.proc.poll() is None:
            self.note_processes()
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(EXIT_TIMEOUT)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        leftovers = {p for p in self.seen if _alive(p)}
        for proc in _ours(self.data_dir, self.ports):  # only what runs on our data dir: surely ours
            with contextlib.suppress(psutil.Error):
                if any(str(self.data_dir) in arg for arg in proc.cmdline()):
                    leftovers.add(proc)
        for sig in (signal.SIGINT, signal.SIGKILL):  # SIGINT: PostgreSQL's fast shutdown
            for proc in leftovers:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(sig)
            psutil.wait_procs(list(leftovers), timeout=10)
            leftovers = {p for p in leftovers if _alive(p)}


def _http() -> httpx.Client:
    return httpx.Client(timeout=30, trust_env=False)  # no proxy between us and 127.0.0.1


def _field(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in the output:\n{text}"
    return match.group(1)


def _decimal(response: httpx.Response) -> dict:
    assert response.status_code == 200, f"{response.request.url}: HTTP {response.status_code} {response.text}"
    return json.loads(response.text, parse_float=Decimal)


def _wait_for_operation(client: httpx.Client, base: str, operation_id: str, data_dir: Path) -> dict:
    deadline = time.monotonic() + OPERATION_TIMEOUT
    while True:
        record = _decimal(client.get(f"{base}/sobjects/BackgroundOperation/{operation_id}"))
        if record["Status"] == "Complete":
            return record
        if record["Status"] in ("Error", "Canceled"):
            pytest.fail(f"the operation ended {record['Status']}: {record}\n{_logs(data_dir)}")
        if time.monotonic() > deadline:
            pytest.fail(f"the operation is still {record['Status']} after {OPERATION_TIMEOUT}s: {record}\n{_logs(data_dir)}")
        time.sleep(0.5)


def _two_free_ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


def test_up_demo_refund_ctrl_c_and_restart_keeps_the_data(tmp_path):
    data_dir = tmp_path / "om-data"
    prefect_port, api_port = _two_free_ports()

    # First start, on a new data dir, with the demo order book.
    engine = Engine(data_dir, prefect_port, api_port, demo=True, cwd=tmp_path)
    try:
        first_startup = engine.wait_until_up(demo=True)
        print(f"\nom-engine up --demo (new data dir) was up in {first_startup:.1f}s")
        out = engine.output
        token = _field(r"Bearer token: (\S+)", out)
        ids = re.search(r"OrderSummary (\w+), CreditMemo (\w+), Invoice (\w+)", out)
        assert ids, out
        order_id, memo_id, invoice_id = ids.groups()
        ui_url = _field(r"Prefect UI:\s+(\S+)", out)
        facade_url = _field(r"REST facade:\s+(\S+)", out)
        assert facade_url == f"http://127.0.0.1:{api_port}"
        assert ui_url == f"http://127.0.0.1:{prefect_port}"
        refund_url = _field(r"\s(http://\S+/async-actions/ensure-refunds-async)\b", out)
        assert f"/order-summaries/{order_id}/" in refund_url
        body = json.loads(_field(r"-d '(\{.*\})'", out))
        assert body == {"creditMemoId": memo_id, "invoicesToPay": [{"invoiceId": invoice_id}]}
        payment_summary_ids = re.findall(r"/sobjects/OrderPaymentSummary/(\w+)", out)
        assert len(payment_summary_ids) == 2, out
        base = f"{facade_url}/services/data/v60.0"

        with _http() as client:
            client.headers["Authorization"] = f"Bearer {token}"
            response = client.post(refund_url, json=body)
            assert response.status_code == 201, response.text
            operation_id = response.json()["backgroundOperationId"]
            _wait_for_operation(client, base, operation_id, data_dir)

            assert _decimal(client.get(f"{base}/sobjects/CreditMemo/{memo_id}"))["Balance"] == 0
            assert _decimal(client.get(f"{base}/sobjects/Invoice/{invoice_id}"))["Balance"] == 0
            refunded = [_decimal(client.get(f"{base}/sobjects/OrderPaymentSummary/{i}"))["RefundedAmount"]
                        for i in payment_summary_ids]
            assert sum(refunded) == Decimal("25.00"), refunded  # 30.00 memo - 5.00 fee

        with _http() as client:
            ui = client.get(ui_url)
            assert ui.status_code == 200 and "<html" in ui.text.lower(), ui.text[:500]
            health = client.get(f"{ui_url}/api/health")
            assert health.status_code == 200 and health.json() is True, health.text

        # Prefect's API is no back door to the money: it wants the auth string `up` printed.
        auth = _field(r"Prefect auth: (\S+)", out)
        with _http() as client:
            anonymous = client.post(f"{ui_url}/api/deployments/filter", json={})
            assert anonymous.status_code == 401, anonymous.text
            user, _, password = auth.partition(":")
            signed = client.post(f"{ui_url}/api/deployments/filter", json={}, auth=(user, password))
            assert signed.status_code == 200 and "ensure-refunds-async" in {d["name"] for d in signed.json()}
            assert client.get(f"{ui_url}/ui-settings").json()["auth"] == "BASIC"  # the UI asks for it

        # A child that dies is restarted, with a log line; the rest keeps running.
        [executor] = [p for p in psutil.Process(engine.proc.pid).children(recursive=True)
                      if "runtime.executor" in " ".join(p.cmdline())]
        executor.kill()
        engine.wait_for_line("engine restarted", timeout=OPERATION_TIMEOUT)
        assert "engine exited with code -9; restarting it in 1 s" in engine.output, engine.output
        with _http() as client:
            client.headers["Authorization"] = f"Bearer {token}"
            order = _decimal(client.get(f"{base}/sobjects/OrderSummary/{order_id}"))
            assert order["Id"] == order_id

        engine.note_processes()
        assert engine.interrupt() == 0, engine.output
        assert "stopped." in engine.output, engine.output
        left = engine.left_behind()
        assert not left, "left running after Ctrl-C:\n" + "\n".join(left)
    finally:
        engine.kill()

    # Second start on the same data dir, without --demo: the order is still there.
    again = Engine(data_dir, prefect_port, api_port, demo=False, cwd=tmp_path)
    try:
        second_startup = again.wait_until_up(demo=False)
        print(f"om-engine up (same data dir, no --demo) was up in {second_startup:.1f}s")
        out = again.output
        assert "Demo order" not in out
        new_token = _field(r"Bearer token: (\S+)", out)
        assert new_token != token
        assert _field(r"Prefect auth: (\S+)", out) == auth  # kept in the data directory
        with _http() as client:
            client.headers["Authorization"] = f"Bearer {new_token}"
            order = _decimal(client.get(f"{base}/sobjects/OrderSummary/{order_id}"))
            assert order["Id"] == order_id
            assert _decimal(client.get(f"{base}/sobjects/CreditMemo/{memo_id}"))["Balance"] == 0
            refunded = [_decimal(client.get(f"{base}/sobjects/OrderPaymentSummary/{i}"))["RefundedAmount"]
                        for i in payment_summary_ids]
            assert sum(refunded) == Decimal("25.00"), refunded
            stale = client.get(f"{base}/sobjects/OrderSummary/{order_id}", headers={"Authorization": f"Bearer {token}"})
            assert stale.status_code == 401, stale.text
        with _http() as client:
            assert client.get(f"{ui_url}/api/health").json() is True

        again.note_processes()
        assert again.interrupt() == 0, again.output
        left = again.left_behind()
        assert not left, "left running after the second Ctrl-C:\n" + "\n".join(left)
    finally:
        again.kill()
