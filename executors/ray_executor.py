"""Jobs as Ray tasks (`--executor ray [--ray-address ADDR]`): each job a task asking for
`num_cpus` = its threads, all submitted at once and collected as they end (Ray's fan-out
pattern). Without an address, a local Ray instance on this machine, kept on loopback; with one,
an existing cluster. Nothing is shared but Ray: the data travels through the object store,
each node's project is checked against the driver's, and each job's output comes back as an
archive that lands atomically."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from executors import landing
from executors.identity import identity_differences, project_identity
from executors.job import Job, JobResult
from executors.node_data import pack_data
from executors.progress import Progress
from executors import ray_tasks
from fmnist.errors import FmnistError, reason
from fmnist.placement import usable_cpus
from fmnist.rundir import safe_name

#: Keeps a local instance's services on 127.0.0.1 (Ray binds the machine's address otherwise).
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
CONNECT_TIMEOUT_SECONDS = 5.0
NODE_CHECK_TIMEOUT_SECONDS = 120.0
#: Ray restarts a task whose worker process or node died this many times before it fails.
TASK_RETRIES = 2
WAIT_SECONDS = 1.0


def import_ray(local: bool):
    if local:
        os.environ.setdefault(LOOPBACK_ENV, "0")  # read when Ray is imported
    try:
        import ray
    except ImportError:  # not installed, or an install that does not import
        raise FmnistError(
            "--executor ray needs Ray, which is not installed: pip install 'fmnist-parity[ray]'"
        ) from None
    return ray


def probe(address: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Fail in seconds, in one line, where nothing listens at `address` (Ray itself retries for
    minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise FmnistError(f"--ray-address {address!r} is not HOST:PORT (the address `ray start --head` printed)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise FmnistError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or reason(exc)}): is `ray start --head`"
            " running there, and is the port open from here?"
        ) from None


class RayExecutor:
    def __init__(
        self,
        address: str | None,
        threads: int,
        data_dir: Path,
        data_sha256: dict[str, str],
        log: Callable[[str], None] = print,
    ) -> None:
        self.address, self.threads, self.log = address, threads, log
        self.ray = import_ray(local=address is None)
        if address is not None:
            probe(address)
        try:
            self.ray.init(
                address=address or "local",
                num_cpus=None if address else len(usable_cpus()),
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
            )
        except Exception as exc:  # Ray's own errors: a version mismatch, a refused handshake...
            where = f"the Ray cluster at {address}" if address else "a new local Ray instance"
            raise FmnistError(
                f"cannot connect to {where}: {reason(exc)} (a cluster with token authentication needs"
                " RAY_AUTH_MODE=token and its token here too)"
            ) from None
        try:
            self.identity = project_identity()
            self.nodes = self._check_nodes()
            self.data = self.ray.put(pack_data(data_dir, data_sha256))  # once; Ray copies it to each node once
        except BaseException:
            self.close()
            raise

    def describe(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
        nodes = ", ".join(f"{n['node']} ({n['cpus']} CPUs)" for n in self.nodes)
        return f"Ray tasks on {where}: {nodes}; {self.threads} thread{'s' if self.threads != 1 else ''} per run"

    def close(self) -> None:
        self.ray.shutdown()

    def _check_nodes(self) -> list[dict[str, Any]]:
        """The nodes that will run jobs, each running the driver's project; refuses (naming them)
        nodes that run another, and a cluster with no node big enough for one job."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        alive = [n for n in self.ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
        describe = self.ray.remote(num_cpus=0)(ray_tasks.describe_node)
        refs = [
            describe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
            for n in alive
        ]
        try:
            nodes = self.ray.get(refs, timeout=NODE_CHECK_TIMEOUT_SECONDS)
        except Exception as exc:
            raise FmnistError(f"the Ray nodes did not answer within {NODE_CHECK_TIMEOUT_SECONDS:.0f} s: {reason(exc)}")
        refused = [(n, identity_differences(self.identity, n)) for n in nodes]
        refused = [(n, why) for n, why in refused if why]
        if refused:
            names = ", ".join(f"{n['node']} ({n['host']})" for n, _ in refused)
            raise FmnistError(
                f"Ray node {names} runs another fmnist-parity than this driver ({'; '.join(refused[0][1])}):"
                " install the driver's version on every node, or stop those nodes"
            )
        big = [n for n in alive if n["Resources"]["CPU"] >= self.threads]
        if not big:
            raise FmnistError(
                f"no node of the Ray cluster has {self.threads} CPUs for one run (nodes:"
                f" {', '.join(str(int(n['Resources']['CPU'])) for n in alive) or 'none with CPUs'}); pass --threads"
                " with fewer, or add a node"
            )
        return nodes

    def run(self, jobs: Sequence[Job], log_dir: Path, prefix: str) -> list[JobResult]:
        progress = Progress(len(jobs), prefix, self.log)
        log_dir.mkdir(parents=True, exist_ok=True)
        events = self.ray.remote(num_cpus=0)(ray_tasks.StartEvents).remote()
        task = self.ray.remote(ray_tasks.run_job)
        pending = {}
        for job in jobs:
            spec = {
                "name": job.name,
                "argv": list(job.argv),
                "threads": job.threads,
                "inputs": dict(job.inputs),
                "env": dict(job.env),
                "archive": landing.pack(job.out_dir) if job.resumes and job.out_dir.is_dir() else None,
            }
            options = {"num_cpus": job.threads, "max_retries": TASK_RETRIES, "name": f"fmnist {job.name}"}
            pending[task.options(**options).remote(spec, self.data, self.identity, events)] = job
        results: dict[int, JobResult] = {}
        index = {id(job): i for i, job in enumerate(jobs)}
        try:
            while pending:
                ready, _ = self.ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
                self._drain(events, jobs, progress)
                for ref in ready:
                    job = pending.pop(ref)
                    results[index[id(job)]] = result = self._collect(ref, job, log_dir)
                    progress.ended(result)
        except KeyboardInterrupt:
            for ref in pending:
                self.ray.cancel(ref, force=True)
            raise
        finally:
            self.ray.kill(events)
        return [results[i] for i in range(len(jobs))]

    def _drain(self, events: Any, jobs: Sequence[Job], progress: Progress) -> None:
        by_name = {job.name: job for job in jobs}
        for name, node in self.ray.get(events.take.remote()):
            progress.started(by_name[name], node)

    def _collect(self, ref: Any, job: Job, log_dir: Path) -> JobResult:
        log = log_dir / f"{safe_name(job.name)}.log"
        try:
            out = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:  # worker or node lost beyond the retries, cancelled
            now = time.time()
            message = f"the Ray task was lost: {reason(exc)}"
            log.write_text(message + "\n")
            return JobResult(job, False, "?", now, now, None, message, log)
        log.write_bytes(out["log"])
        error = out["error"]
        if out["ok"]:
            if out["archive"] is None:
                error = "the job wrote nothing"
            else:
                error = "; ".join(landing.land(out["archive"], job.out_dir, job.check, job.owns))
        return JobResult(job, not error, out["node"], out["started_at"], out["ended_at"], out["returncode"], error, log)
