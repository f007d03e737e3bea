"""A real two-node Ray cluster on this machine, for tests: two network namespaces joined by a
veth pair (head 10.251.0.1, worker 10.251.0.2), so each node has an address of its own and the
driver reaches the worker only over the network, as across machines. Needs root and `ip netns`.

Every process a cluster starts runs inside one of its namespaces, so `close()` ends exactly
those (`ip netns pids`), never another Ray on the machine (`ray stop` would end them all), then
deletes the namespaces. The nodes share this machine's filesystem; the worker gets a cache and
a temporary folder of its own, so what it writes can be inspected.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

HEAD_IP, WORKER_IP = "10.251.0.1", "10.251.0.2"
PORT = 6379  # the namespaces are the cluster's own: no other listener can hold it
BIN = Path(sys.executable).parent
#: Token authentication off on every node and the driver alike: a head started where
#: ~/.ray/auth_token exists turns it on by itself, and a node or driver given an explicit address
#: does not, so they could not join.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
START_TIMEOUT_S = 120.0


def unavailable() -> str | None:
    """Why a cluster cannot be made here (None: it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (iproute2, util-linux)"
    probe = f"fmnist-probe-{os.getpid()}-{secrets.token_hex(3)}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode != 0:
        return f"`ip netns add` fails here: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def netns_pids(ns: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(p) for p in done.stdout.split()]


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


class Namespaces:
    """Two namespaces, `head` and `worker`, their veth pair up, `lo` up, a default route each."""

    def __init__(self) -> None:
        tag = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.head, self.worker = f"fmnist-head-{tag}", f"fmnist-worker-{tag}"
        self.created: list[str] = []
        veth_head, veth_worker = f"fmh{tag[-6:]}", f"fmw{tag[-6:]}"  # at most 15 characters
        try:
            for ns in (self.head, self.worker):
                _ip("netns", "add", ns)
                self.created.append(ns)
            # Created inside the namespaces: never an interface in the machine's own.
            _ip(
                "link",
                "add",
                veth_head,
                "netns",
                self.head,
                "type",
                "veth",
                "peer",
                "name",
                veth_worker,
                "netns",
                self.worker,
            )
            for ns, veth, address in ((self.head, veth_head, HEAD_IP), (self.worker, veth_worker, WORKER_IP)):
                _ip("-n", ns, "addr", "add", f"{address}/24", "dev", veth)
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "link", "set", veth, "up")
                _ip("-n", ns, "route", "add", "default", "dev", veth)
        except BaseException:
            self.close()
            raise

    def exec(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def kill_all(self, ns: str, timeout: float = 30.0) -> None:
        """SIGKILL every process in `ns` (only this cluster's: the namespace is its own)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = netns_pids(ns)
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        raise RuntimeError(f"processes in network namespace {ns} outlived SIGKILL: {netns_pids(ns)}")

    def close(self) -> None:
        for ns in reversed(self.created):
            try:
                self.kill_all(ns)
            finally:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.created.clear()


class Node:
    """`ray start ... --block` in a namespace, in a process group of its own; its output in `log`."""

    def __init__(
        self, prefix: Sequence[str], args: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path
    ) -> None:
        self.log = log
        with log.open("wb") as f:
            self.proc = subprocess.Popen(
                [*prefix, str(BIN / "ray"), "start", *args, "--disable-usage-stats", "--block"],
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )

    def wait_started(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Ray runtime started" in self.log.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError(f"ray start did not start (exit {self.proc.poll()}):\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)


def _hiding(folders: Sequence[Path]) -> list[str]:
    """A command prefix: the rest runs in a mount namespace of its own where each folder is an
    empty tmpfs (private: nothing is mounted for any other process)."""
    script = 'while [ "$1" != -- ]; do mount -t tmpfs tmpfs "$1" || exit 1; shift; done; shift; exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *map(str, folders), "--"]


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, **RAY_ENV}


class Cluster:
    """A head with no CPUs in one namespace and a worker with `worker_cpus` in the other: every
    task that needs a CPU runs on the worker. `worker_env` adds to the worker node's environment
    (its Ray workers, and the trainings they start, inherit it); `worker_cwd` is the folder its
    `ray start` runs in (its Ray workers' working directory), `root` by default. The folders in
    `hidden_from_worker` look empty on the worker node (a tmpfs over each in a mount namespace of
    its own), as the driver's files are on another machine."""

    def __init__(
        self,
        root: Path,
        worker_cpus: int = 2,
        worker_env: Mapping[str, str] | None = None,
        worker_cwd: Path | None = None,
        hidden_from_worker: Sequence[Path] = (),
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.address = f"{HEAD_IP}:{PORT}"
        self.worker_tmp, self.worker_cache = self.root / "worker-tmp", self.root / "worker-cache"
        self.worker_tmp.mkdir(exist_ok=True)
        self.nodes: list[Node] = []
        self.ns = Namespaces()
        # Ray's sockets live under its temp dir, and a socket's path may not exceed 107 bytes.
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="fmray-", dir="/tmp"))
        try:
            head = Node(
                self.ns.exec(self.ns.head),
                [
                    *("--head", "--node-ip-address", HEAD_IP, "--port", str(PORT), "--num-cpus", "0"),
                    *("--include-dashboard=false", "--temp-dir", str(self.ray_tmp / "h")),
                ],
                self.root / "head.log",
                base_env(),
                self.root,
            )
            self.nodes.append(head)
            head.wait_started()
            env = {k: v for k, v in base_env().items() if k != "FMNIST_DATA_DIR"}  # the driver's data travels
            env.update(TMPDIR=str(self.worker_tmp), XDG_CACHE_HOME=str(self.worker_cache), **(worker_env or {}))
            worker = Node(
                [*self.ns.exec(self.ns.worker), *_hiding(hidden_from_worker)],
                [
                    *("--address", self.address, "--node-ip-address", WORKER_IP, "--num-cpus", str(worker_cpus)),
                    *("--temp-dir", str(self.ray_tmp / "w")),
                ],
                self.root / "worker.log",
                env,
                worker_cwd or self.root,
            )
            self.nodes.append(worker)
            worker.wait_started()
            self.wait_for_worker()
        except BaseException:
            self.close()
            raise

    def wait_for_worker(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until the head lists the worker alive with its CPUs (a driver would not see it before)."""
        code = f"""
import time, ray
ray.init(address={self.address!r}, logging_level="ERROR", log_to_driver=False)
deadline = time.monotonic() + {timeout}
while time.monotonic() < deadline:
    if any(n["Alive"] and n["NodeManagerAddress"] == {WORKER_IP!r} and n["Resources"].get("CPU")
           for n in ray.nodes()):
        raise SystemExit(0)
    time.sleep(0.5)
raise SystemExit(f"no worker in {{ray.nodes()}}")
"""
        done = subprocess.run(
            [*self.ns.exec(self.ns.head), sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout + 60,
            env=base_env(),
            cwd=self.root,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the worker node did not join:\n{done.stderr[-3000:]}\n{self.nodes[-1].tail()}")

    def driver(self, *args: str, cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen:
        """`fmnist *args` beside the head (in its namespace), started; the caller waits for it.
        Run it from a folder holding no project: Ray puts the driver's working directory first on
        its workers' sys.path."""
        return subprocess.Popen(
            [*self.ns.exec(self.ns.head), str(BIN / "fmnist"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env={**base_env(), **(env or {})},
        )

    def run_driver(self, *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 900):
        proc = self.driver(*args, cwd=cwd, env=env)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"fmnist {' '.join(args)} ran past {timeout} s:\n{err[-3000:]}") from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def worker_processes(self) -> list[int]:
        return netns_pids(self.ns.worker)

    def close(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        self.nodes.clear()
        self.ns.close()  # whatever is left in the namespaces: Ray workers, trainings
        shutil.rmtree(self.ray_tmp, ignore_errors=True)
