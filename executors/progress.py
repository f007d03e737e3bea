"""The lines a person follows while jobs run: one when a job starts and one when it ends (where,
how long), each with the running count of done, running and waiting jobs."""

from __future__ import annotations

from collections.abc import Callable

from executors.job import Job, JobResult


class Progress:
    def __init__(self, total: int, prefix: str, log: Callable[[str], None] = print) -> None:
        self.total, self.prefix, self.log = total, prefix, log
        self.running: set[str] = set()
        self.done = self.failed = 0

    def counts(self) -> str:
        waiting = self.total - self.done - len(self.running)
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.done} done{failed}, {len(self.running)} running, {waiting} waiting"

    def started(self, job: Job, node: str) -> None:
        self.running.add(job.name)
        threads = f"{job.threads} thread{'s' if job.threads != 1 else ''}"
        self.log(f"{self.prefix} {job.name}: started on {node} ({threads}) [{self.counts()}]")

    def ended(self, result: JobResult) -> None:
        self.running.discard(result.job.name)  # a Ray task may end without having been seen to start
        self.done += 1
        if result.ok:
            self.log(
                f"{self.prefix} {result.job.name}: finished on {result.node} in {result.seconds:.1f} s"
                f" [{self.counts()}]"
            )
        else:
            self.failed += 1
            self.log(
                f"{self.prefix} {result.job.name}: FAILED on {result.node} after {result.seconds:.1f} s:"
                f" {result.error} [{self.counts()}]"
            )
