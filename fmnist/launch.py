"""Every child process the project starts, started one way: a training on any executor, an
engine job (`fmnist.engine_job`), a benchmark worker, the export job a server runs. Its thread
count is set in the environment before any framework loads, it is pinned to its cores where it
has its own, runs in a session of its own (a Ctrl-C reaches the parent, which forwards it once or
ends the child), with SIGINT as at a terminal, and is killed with its parent (a Ray worker
cancelled or lost takes its training with it). Its output goes to a log file."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from fmnist.datasets import DATA_DIR_ENV
from fmnist.placement import EXECUTOR_ENV, NODE_ENV, thread_env

_PR_SET_PDEATHSIG = 1
#: How long an interrupted job may take to save its epoch and exit before it is killed.
STOP_GRACE_SECONDS = 60.0


def job_env(
    threads: int, executor: str, node: str, data_dir: str | os.PathLike | None, extra: Mapping[str, str] = {}
) -> dict[str, str]:
    """This process's environment, plus the job's own (`extra`), its threads and where it runs."""
    env = {
        **os.environ,
        **extra,
        **thread_env(threads),
        EXECUTOR_ENV: executor,
        NODE_ENV: node,
        "PYTHONUNBUFFERED": "1",
    }
    if data_dir is not None:
        env[DATA_DIR_ENV] = str(data_dir)
    return env


def _child_setup(cpus: Sequence[int] | None) -> None:
    """Runs in the child between fork and exec."""
    # stop() interrupts a job with SIGINT, as Ctrl-C would: a driver started in the background
    # (`&`, nohup) has SIGINT ignored, which a child would inherit, and Python then never raises
    # KeyboardInterrupt, so the job could not save its last epoch before being killed.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:  # Linux: SIGKILL when the thread that started it ends
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def start(
    command: Sequence[str],
    env: dict[str, str],
    log: Path,
    cpus: Sequence[int] | None = None,
    echo: bool = False,
    cwd: Path | None = None,
) -> subprocess.Popen:
    """`python *command` in `cwd` (this process's by default), its output appended to `log` (and,
    with `echo`, shown on this process's stdout as it comes). Call `finished` once it has ended,
    before reading the log."""
    with Path(log).open("ab") as f:
        proc = subprocess.Popen(
            [sys.executable, *command],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if echo else f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: _child_setup(cpus),
            cwd=cwd,
        )
    if echo:
        tee = threading.Thread(target=_tee, args=(proc.stdout, Path(log)), daemon=True)
        tee.start()
        proc.tee = tee  # type: ignore[attr-defined]
    return proc


def finished(proc: subprocess.Popen) -> None:
    """Wait until an ended process's output is all in its log."""
    tee = getattr(proc, "tee", None)
    if tee is not None:
        tee.join()


def _tee(source: IO[bytes], log: Path) -> None:
    with log.open("ab") as f:
        for line in iter(source.readline, b""):
            f.write(line)
            f.flush()
            sys.stdout.buffer.write(line)
            sys.stdout.flush()


def stop(procs: Sequence[subprocess.Popen], grace: float = STOP_GRACE_SECONDS) -> None:
    """Interrupt running jobs as a Ctrl-C would (each saves its last finished epoch), then kill
    whatever has not ended after `grace` seconds."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(
    command: Sequence[str], env: dict[str, str], log: Path, timeout: float | None = None, cwd: Path | None = None
) -> int | None:
    """`start` a child and wait for it: its exit code, or None when it ran past `timeout` and was
    killed. Interrupted here (Ctrl-C), the child is killed too: its work is of no use then."""
    proc = start(command, env, log, cwd=cwd)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def log_tail(path: Path, lines: int = 3) -> str:
    """The last lines of a log, joined: the reason a failed job gives in one line."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(kept[-lines:])[:400]
