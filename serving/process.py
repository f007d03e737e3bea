"""A real `fmnist serve` in its own process on the loopback address: started, waited for,
measured (resident memory from /proc) and stopped. Used by the load test, the screenshot and
the slow tests, so each talks to the server a user would run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT_S = 120.0  # a cold start imports FastAPI and opens the models: seconds, not minutes
STOP_TIMEOUT_S = 15.0
POLL_S = 0.02


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (uvicorn workers), from /proc (Linux)."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        kids = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


class Server:
    """`python -m fmnist_cli serve MODEL... --port P` until `stop()`; `start_seconds` is the time
    from the process start to the first 200 from /healthz."""

    def __init__(
        self,
        models: list[str],
        args: tuple[str, ...] = (),
        port: int | None = None,
        env: dict[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = log
        cmd = [sys.executable, "-m", "fmnist_cli", "serve", *models, "--host", HOST, "--port", str(self.port), *args]
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (closed in stop)
        self._out = out
        started = time.perf_counter()
        self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self.start_seconds = self._wait_ready(started)

    def _wait_ready(self, started: float) -> float:
        deadline = started + START_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                self.stop()
                tail = self.log_path.read_text()[-2000:] if self.log_path else ""
                raise RuntimeError(f"fmnist serve exited with {self.process.returncode} before it answered\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(POLL_S)
        self.stop()
        raise RuntimeError(f"fmnist serve did not answer on {self.url} within {START_TIMEOUT_S:.0f} s")

    def get_json(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def rss(self) -> int:
        return rss_bytes(self.process.pid)

    def stop(self) -> int | None:
        """SIGINT (uvicorn's graceful stop, as Ctrl-C), then SIGKILL if it hangs; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._out is not subprocess.DEVNULL:
            self._out.close()
        return self.process.returncode

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
