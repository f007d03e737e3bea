"""What runs on a Ray node: a check that the project the node would train with is the driver's,
then one job in a fresh process (`fmnist.launch`, as on this machine) started in a scratch
folder of the node's own, whose output travels back as one archive. Nothing here is shared with
the driver but Ray.

The check runs in a process started exactly as the training is (same interpreter, environment
and working folder), not in the Ray worker: Ray puts the driver's working folder first on its
workers' `sys.path`, so the worker may import another copy of the project than the training."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from executors import landing
from fmnist import launch
from executors.identity import identity_differences
from executors.job import fill
from executors.node_data import ensure_data

#: Scratch folders of this node's jobs, one per attempt, named by the Ray worker's pid.
SCRATCH = "fmnist-ray-jobs"
_IDENTITY = "import json; from executors.identity import project_identity; print(json.dumps(project_identity()))"


class StartEvents:
    """The driver's list of jobs started on the nodes: a Ray actor taking no CPU. Tasks tell it
    without waiting (`add.remote`), so telling never blocks a task: Ray lends a blocked task's
    CPU to the next one."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def add(self, name: str, node: str) -> None:
        self.events.append((name, node))

    def take(self) -> list[tuple[str, str]]:
        events, self.events = self.events, []
        return events


def node_address() -> str:
    import ray

    return ray.util.get_node_ip_address()


def training_identity(cwd: Path) -> dict[str, Any]:
    """The identity of the project a job's process started in `cwd` imports."""
    done = subprocess.run(
        [sys.executable, "-c", _IDENTITY], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        tail = " / ".join(done.stderr.strip().splitlines()[-2:])
        return {"version": f"none importable ({tail[:200]})", "commit": None, "sources": None}
    return json.loads(done.stdout.strip().splitlines()[-1])


def describe_node() -> dict[str, Any]:
    """This node's address, host name, usable cores and the project its jobs would run: the
    driver's check before any job."""
    from fmnist.placement import usable_cpus

    with tempfile.TemporaryDirectory(prefix="fmnist-ray-check-") as cwd:
        identity = training_identity(Path(cwd))
    return {"node": node_address(), "host": socket.gethostname(), "cpus": len(usable_cpus()), **identity}


def refusal(driver: dict[str, Any], cwd: Path) -> str:
    """Why this node must not run the driver's jobs, or '' when its project is the driver's."""
    differences = identity_differences(driver, training_identity(cwd))
    if not differences:
        return ""
    return (
        f"node {node_address()} ({socket.gethostname()}) runs another fmnist-parity than the driver"
        f" ({'; '.join(differences)}): install the driver's version there"
    )


def scratch_folder() -> Path:
    """A new scratch folder for this attempt; those of attempts whose Ray worker is gone (killed,
    cancelled, lost with a retry) are removed first."""
    root = Path(tempfile.gettempdir()) / SCRATCH
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        pid = old.name.split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=root, prefix=f"{os.getpid()}-"))


def run_job(spec: dict[str, Any], data: dict[str, Any], driver: dict[str, Any], events: Any) -> dict[str, Any]:
    """One job on this node. `spec`: name, argv, threads, inputs, env, archive (the folder to
    continue, or None). Never raises for the job's own failure: that is a result with its log."""
    node = node_address()
    base = {"node": node, "host": socket.gethostname(), "started_at": time.time(), "log": b""}
    tmp = scratch_folder()
    try:
        refused = refusal(driver, tmp)
        if refused:
            return {**base, "ok": False, "ended_at": time.time(), "returncode": None, "error": refused}
        data_dir = ensure_data(data)
        out, inputs, log = tmp / "out", tmp / "in", tmp / "console.log"
        inputs.mkdir()
        for name, content in spec["inputs"].items():
            (inputs / name).write_bytes(content)
        if spec["archive"] is not None:
            landing.unpack(spec["archive"], out)
        env = launch.job_env(spec["threads"], "ray", node, data_dir, spec["env"])
        events.add.remote(spec["name"], node)
        started_at = time.time()
        proc = launch.start(fill(spec["argv"], out, inputs), env, log, cwd=tmp)
        code = proc.wait()
        ended_at = time.time()
        archive = landing.pack(out) if out.is_dir() and any(out.iterdir()) else None
        error = "" if code == 0 else f"exit {code}: {launch.log_tail(log)}"
        return {
            **base,
            "ok": code == 0,
            "started_at": started_at,
            "ended_at": ended_at,
            "returncode": code,
            "error": error,
            "log": log.read_bytes(),
            "archive": archive,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
