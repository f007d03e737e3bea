"""Where and how a run ran: its thread count, the cores it may use, the host and the executor.

The thread count changes the last bits of a training (the frameworks split reductions by
thread), so a run records it; it is set through the environment, before a framework loads,
because TensorFlow reads its pool sizes once at start-up and torch and OpenMP read theirs at
import. The executors of `fmnist compare` (serial, `--jobs`, Ray) set these variables for each
run they start; `fmnist train --threads N` sets them for itself.
"""

from __future__ import annotations

import os
import socket
from typing import Any

#: The run's thread count, as the executor or `--threads` asked for it.
THREADS_ENV = "FMNIST_THREADS"
#: Which executor started the run: serial, jobs or ray (absent: `fmnist train` started by hand).
EXECUTOR_ENV = "FMNIST_EXECUTOR"
#: The node's name for the executor (a Ray node's address); the host name when absent.
NODE_ENV = "FMNIST_NODE"
#: Every pool size the frameworks read from the environment: OpenMP (torch's intra-op pool and
#: oneDNN), MKL and OpenBLAS (numpy), TensorFlow's intra- and inter-op pools.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


def usable_cpus() -> list[int]:
    """The cores this process may run on (its affinity), not every core of the machine."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def thread_env(threads: int) -> dict[str, str]:
    """The environment that gives a process `threads` threads in every framework it may load."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    return {**{name: str(threads) for name in THREAD_VARIABLES}, THREADS_ENV: str(threads)}


def set_threads(threads: int) -> None:
    """Give this process `threads` threads; only effective before a framework is imported."""
    os.environ.update(thread_env(threads))


def threads_asked() -> int | None:
    """The thread count the executor or `--threads` gave this process (None: the frameworks' own)."""
    threads = os.environ.get(THREADS_ENV, "")
    return int(threads) if threads.isdigit() and int(threads) > 0 else None


def placement() -> dict[str, Any]:
    """What `run.json` records of where this process runs. Not part of what makes a run stale:
    a run trained on another host or with other threads answers the same request."""
    cpus = usable_cpus()
    return {
        "host": socket.gethostname(),
        "node": os.environ.get(NODE_ENV) or socket.gethostname(),
        "executor": os.environ.get(EXECUTOR_ENV) or "direct",
        "threads": threads_asked() or len(cpus),
        "threads_asked": threads_asked(),  # None: the frameworks' own; a resume asks the same again
        "cpus": cpus,
    }


def resumed_threads(info: dict[str, Any]) -> int | None:
    """The thread count a run recorded as asked for (`run.json`'s placement), which `--resume`
    asks again: a run begun on one thread must not go on with a pool per core, whose spinning
    threads would swell its CPU seconds. None for a run that asked for none, or predates the record."""
    where = info.get("placement") if isinstance(info, dict) else None
    asked = where.get("threads_asked") if isinstance(where, dict) else None
    return asked if type(asked) is int and asked > 0 else None
