"""What runs on a Ray node: a check that the node's project is the driver's, then one job in a
fresh process (`executors.process`, as on this machine) in a scratch folder of the node's own,
whose output travels back as one archive. Nothing here is shared with the driver but Ray."""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from executors import landing, process
from executors.job import fill
from executors.identity import identity_differences, project_identity
from executors.node_data import ensure_data


def node_address() -> str:
    import ray

    return ray.util.get_node_ip_address()


def describe_node() -> dict[str, Any]:
    """This node's address, host name, usable cores and project: the driver's check before any job."""
    from fmnist.placement import usable_cpus

    return {"node": node_address(), "host": socket.gethostname(), "cpus": len(usable_cpus()), **project_identity()}


def refusal(driver: dict[str, Any]) -> str:
    """Why this node must not run the driver's jobs, or '' when its project is the driver's."""
    differences = identity_differences(driver, project_identity())
    if not differences:
        return ""
    return (
        f"node {node_address()} ({socket.gethostname()}) runs another fmnist-parity than the driver"
        f" ({'; '.join(differences)}): install the driver's version there"
    )


def run_job(spec: dict[str, Any], data: dict[str, Any], driver: dict[str, Any], events: Any) -> dict[str, Any]:
    """One job on this node. `spec`: name, argv, threads, inputs, env, archive (the folder to
    continue, or None). Never raises for the job's own failure: that is a result with its log."""
    node = node_address()
    base = {"node": node, "host": socket.gethostname(), "started_at": time.time()}
    refused = refusal(driver)
    if refused:
        return {**base, "ok": False, "ended_at": time.time(), "returncode": None, "error": refused, "log": b""}
    data_dir = ensure_data(data)
    with tempfile.TemporaryDirectory(prefix="fmnist-ray-job-") as tmp:
        out, inputs, log = Path(tmp) / "out", Path(tmp) / "in", Path(tmp) / "console.log"
        inputs.mkdir()
        for name, content in spec["inputs"].items():
            (inputs / name).write_bytes(content)
        if spec["archive"] is not None:
            landing.unpack(spec["archive"], out)
        command = fill(spec["argv"], out, inputs)
        env = process.job_env(spec["threads"], "ray", node, data_dir, spec["env"])
        events.put((spec["name"], node))
        started_at = time.time()
        proc = process.start(command, env, log)
        code = proc.wait()
        ended_at = time.time()
        archive = landing.pack(out) if out.is_dir() and any(out.iterdir()) else None
        error = "" if code == 0 else f"exit {code}: {process.log_tail(log)}"
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
