"""Jobs on this machine: one at a time (serial, its output shown as it runs) or `slots` at once,
each on its own cores (`--jobs N`), its output in its log only."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from fmnist import launch
from executors.job import Job, JobResult, fill
from executors.progress import Progress
from fmnist.placement import usable_cpus
from fmnist.rundir import safe_name

POLL_SECONDS = 0.2


def core_sets(slots: int, threads: int, cpus: Sequence[int] | None = None) -> list[list[int]]:
    """The cores of each slot: consecutive, disjoint while there are enough of them; beyond that
    the slots share cores round the list (slower, never wrong)."""
    cpus = list(cpus if cpus is not None else usable_cpus())
    return [[cpus[(slot * threads + i) % len(cpus)] for i in range(threads)] for slot in range(slots)]


class LocalExecutor:
    """`slots` jobs at once on this machine. `pin`: each slot on its own cores (`core_sets`);
    serial runs unpinned on every core the process may use, as `fmnist train` does."""

    def __init__(
        self,
        name: str,
        slots: int,
        threads: int,
        data_dir: str | Path | None,
        pin: bool,
        log: Callable[[str], None] = print,
    ) -> None:
        self.name, self.slots, self.threads, self.data_dir, self.log = name, slots, threads, data_dir, log
        self.cores = core_sets(slots, threads) if pin else [None] * slots
        self.node = socket.gethostname()
        if pin and slots * threads > len(usable_cpus()):
            log(
                f"[{name}] warning: {slots} jobs x {threads} threads is more than the {len(usable_cpus())}"
                " cores this process may use; jobs share cores and each runs slower"
            )

    def describe(self) -> str:
        if self.slots == 1:
            return f"serial on {self.node}, {self.threads} thread{'s' if self.threads != 1 else ''} per run"
        return f"{self.slots} jobs at once on {self.node}, {self.threads} thread{'s' if self.threads != 1 else ''} each"

    def close(self) -> None:
        pass

    def run(self, jobs: Sequence[Job], log_dir: Path, prefix: str) -> list[JobResult]:
        """Every job, `slots` at a time, in order; returns their results in the order given.
        Ctrl-C interrupts the running jobs (each keeps its last finished epoch) and re-raises."""
        progress = Progress(len(jobs), prefix, self.log)
        log_dir.mkdir(parents=True, exist_ok=True)
        waiting = list(enumerate(jobs))
        running: dict[int, tuple[int, Job, subprocess.Popen, float, Path, tempfile.TemporaryDirectory]] = {}
        results: dict[int, JobResult] = {}
        try:
            while waiting or running:
                for slot in range(self.slots):
                    if slot not in running and waiting:
                        index, job = waiting.pop(0)
                        running[slot] = (index, job, *self._start(job, slot, log_dir))
                        progress.started(job, self.node)
                for slot, (index, job, proc, started_at, log, inputs) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    del running[slot]
                    launch.finished(proc)
                    inputs.cleanup()
                    results[index] = self._result(job, proc.returncode, started_at, log)
                    progress.ended(results[index])
                time.sleep(POLL_SECONDS if running else 0)
        except KeyboardInterrupt:
            launch.stop([proc for _, _, proc, *_ in running.values()])
            raise
        return [results[i] for i in range(len(jobs))]

    def _start(self, job: Job, slot: int, log_dir: Path):
        inputs = tempfile.TemporaryDirectory(prefix="fmnist-job-")
        for name, data in job.inputs.items():
            (Path(inputs.name) / name).write_bytes(data)
        log = log_dir / f"{safe_name(job.name)}.log"
        env = launch.job_env(job.threads, self.name, self.node, self.data_dir, job.env)
        started_at = time.time()
        command = fill(job.argv, job.out_dir, Path(inputs.name))
        proc = launch.start(command, env, log, self.cores[slot], echo=self.slots == 1)
        return proc, started_at, log, inputs

    def _result(self, job: Job, code: int, started_at: float, log: Path) -> JobResult:
        ended_at = time.time()
        error = ""
        if code != 0:
            error = f"exit {code}: {launch.log_tail(log)}"
        elif job.check is not None:
            problems = job.check(job.out_dir)
            error = "; ".join(problems)
        return JobResult(job, not error, self.node, started_at, ended_at, code, error, log)
