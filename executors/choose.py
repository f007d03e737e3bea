"""The executor a command asked for (`--executor`, `--jobs`, `--threads`, `--ray-address`), with
the thread count each run gets when none is given: every core for serial runs, the cores shared
out for `--jobs N`, one per run on Ray."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fmnist.errors import FmnistError
from fmnist.placement import usable_cpus

EXECUTORS = ("serial", "jobs", "ray")


@dataclass(frozen=True)
class ExecutorChoice:
    executor: str = "serial"  # serial, jobs (--jobs N) or ray
    jobs: int = 1
    threads: int | None = None
    ray_address: str | None = None

    @classmethod
    def from_args(cls, executor: str | None, jobs: int | None, threads: int | None, ray_address: str | None):
        """What the flags say; `--jobs N` alone means the local executor with N slots."""
        if ray_address and executor not in (None, "ray"):
            raise FmnistError(f"--ray-address goes with --executor ray, not --executor {executor}")
        name = executor or ("ray" if ray_address else "jobs" if jobs and jobs > 1 else "serial")
        if name == "ray" and jobs:
            raise FmnistError("--jobs is for this machine; on Ray every run is a task, as many at once as fit")
        if name == "serial" and jobs and jobs > 1:
            raise FmnistError(f"--executor serial runs one job at a time; drop it, or --jobs {jobs}")
        return cls(name, jobs or (2 if name == "jobs" else 1), threads, ray_address)

    def threads_per_run(self) -> int:
        if self.threads is not None:
            return self.threads
        if self.executor == "ray":
            return 1
        return max(1, len(usable_cpus()) // self.jobs)


def open_executor(
    choice: ExecutorChoice,
    data_dir: Path,
    data_sha256: dict[str, str],
    log: Callable[[str], None] = print,
):
    """The executor, connected (Ray) and ready; an unreachable cluster is an `FmnistError` here,
    before anything is written."""
    threads = choice.threads_per_run()
    if choice.executor == "ray":
        from executors.ray_executor import RayExecutor

        return RayExecutor(choice.ray_address, threads, data_dir, data_sha256, log)
    from executors.local import LocalExecutor

    pin = choice.executor == "jobs" or choice.threads is not None
    return LocalExecutor(choice.executor, choice.jobs, threads, data_dir, pin, log)
