"""A job: one training (or other measurement) in a fresh process, and what came of it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

#: Placeholders in a job's argv, replaced on the host that runs it.
OUT, IN = "{out}", "{in}"


@dataclass(frozen=True)
class Job:
    """`python *argv` in a fresh process with `threads` threads.

    `argv` may name `{out}`, the folder the job writes (on the host that runs it), and `{in}`, a
    folder holding `inputs`; `env` adds to the environment it runs in. What it writes lands in
    `out_dir` on this machine. `resumes`: the job continues what `out_dir` holds already (an
    interrupted run), so a remote executor ships that folder along. `check` looks at a finished
    job's output before it is accepted and returns its problems (none: accepted). `owns`: the
    names in `out_dir` the job's output replaces when it lands from another host; anything else
    there is kept (the user's files).
    """

    name: str
    argv: tuple[str, ...]
    out_dir: Path
    threads: int
    inputs: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    resumes: bool = False
    check: Callable[[Path], list[str]] | None = None
    owns: Callable[[str], bool] | None = None


def fill(argv: Sequence[str], out: Path, inputs: Path) -> list[str]:
    """A job's argv with its placeholders replaced by the folders of the host that runs it."""
    return [arg.replace(OUT, str(out)).replace(IN, str(inputs)) for arg in argv]


@dataclass
class JobResult:
    """How a job ended. `started_at`/`ended_at` are `time.time()` on the host that ran it, read
    just before its process started and once it ended; `log` its console output on this machine."""

    job: Job
    ok: bool
    node: str
    started_at: float
    ended_at: float
    returncode: int | None
    error: str = ""
    log: Path | None = None

    @property
    def seconds(self) -> float:
        return self.ended_at - self.started_at
