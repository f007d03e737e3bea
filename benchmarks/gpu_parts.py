"""The prepared GPU run's three parts (`benchmarks.gpu_run`), in the order they run, each writing
its results into the run's folder as it ends: (a) parity on the GPU (`fmnist parity --device`,
float32/float64 and bf16-mixed, with the run-to-run spread), (b) the benchmark (`run_benchmark`,
each measurement's repeats together), (c) trainings of a config with `fmnist compare --jobs`,
stopped cleanly when the run's time is up (`benchmarks.gpu_strong`).

Parity and the trainings run as the commands a user types, from the checkout's root (installed
or not), in processes of their own: what they print goes into the run's log.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import REPO
from benchmarks.gpu_strong import STRONG_FILE, write_summary
from fmnist import launch
from fmnist.errors import FmnistError

#: Parity's results files, as `fmnist parity` names them.
PARITY_FILES = {"float32": "parity.json", "bf16-mixed": "parity-bf16-mixed.json"}
#: JAX takes 75% of the GPU's memory in every process unless told not to: the parity jobs and
#: the trainings share one GPU. Not set for the benchmark, whose figures are comparable to earlier ones.
SHARED_GPU_ENV = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
#: Seconds the trainings have, once told to stop, to end before they are killed.
STOP_GRACE_SECONDS = 30.0
#: How often the trainings' summary is rewritten while they run (a call cut short still returns it).
SUMMARY_EVERY_SECONDS = 30.0


@dataclass
class Budget:
    """The run's time: after `total` seconds from its start no part or step starts, and the
    trainings are stopped."""

    total: float
    began: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.began

    def left(self) -> float:
        return self.total - self.elapsed()


@dataclass
class GpuRun:
    """What every part is given: the run's options, where its results go, its log and its time."""

    args: Any  # the parsed options of `python -m benchmarks.gpu_run`
    folder: Path  # the results folder
    log: Callable[[str], None]
    budget: Budget
    scratch: Path  # outputs of the commands, read into the log
    copy_to: Path | None = None  # where the results also go, one folder down ($OUT)

    def publish(self, part: str) -> list[str]:
        """The part's files in the results folder copied to `copy_to/<folder's name>/` (the device
        tool brings back files up to two folders under $OUT); the names copied."""
        if self.copy_to is None:
            return []
        target = self.copy_to / self.folder.name
        target.mkdir(parents=True, exist_ok=True)
        copied = []
        for file in PART_FILES[part]:
            if (self.folder / file).is_file():
                shutil.copyfile(self.folder / file, target / file)
                copied.append(file)
        return copied

    def env(self) -> dict[str, str]:
        """The environment of parity's and the trainings' processes: one GPU shared among them; on
        --device cpu none at all (the trainings would take one they find)."""
        env = {**os.environ, **SHARED_GPU_ENV}
        if self.args.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        return env

    def data_args(self) -> list[str]:
        return ["--data-dir", self.args.data_dir] if self.args.data_dir else []


def start(run: GpuRun, argv: list[str], name: str) -> tuple[subprocess.Popen, Path]:
    """`python *argv` from the checkout's root in a session of its own (killed with this process),
    its output into the scratch folder."""
    output = run.scratch / f"{name}.log"
    return launch.start(argv, run.env(), output, cwd=REPO), output


def stop(proc: subprocess.Popen, grace: float) -> None:
    """Interrupt a command and the processes it started as a Ctrl-C would; kill them after `grace` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def tail(path: Path, keep: Callable[[str], bool] = lambda line: True, lines: int = 120) -> list[str]:
    """The last `lines` non-empty lines of a command's output that `keep` keeps, for the log."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip() and keep(line)][-lines:]


# ---------------------------------------------------------------------------------- (a) parity


def parity_argv(run: GpuRun, precision: str) -> list[str]:
    a = run.args
    images = a.parity_images if precision == "float32" else a.parity_bf16_images
    argv = ["-m", "fmnist_cli", "parity", "--device", a.device, "--engines", a.parity_engines, "--repeat"]
    argv += ["--config", str(a.parity_config), "--precision", precision, "--steps", str(a.parity_steps)]
    argv += (["--images", str(images)] if images else []) + ["--out", str(run.folder), *run.data_args()]
    return argv


def parity_part(run: GpuRun) -> str:
    """Each precision's `fmnist parity --device ... --repeat`, one after another, none started once
    the part's budget (or the run's) is spent; each stopped at its timeout."""
    began, done = time.perf_counter(), []
    for precision in run.args.parity_precisions:
        spent = time.perf_counter() - began
        if spent > run.args.parity_budget or run.budget.left() <= 0:
            why = "the run's" if run.budget.left() <= 0 else f"the part's ({run.args.parity_budget:.0f} s)"
            run.log(f"[gpu_run] parity {precision}: skipped (not started: {why} time budget was spent)")
            done.append(f"{precision} skipped")
            continue
        run.log(
            f"[gpu_run] parity {precision} on {run.args.device}: {run.args.parity_engines}"
            f" [{run.budget.elapsed():.0f} s]"
        )
        proc, output = start(run, parity_argv(run, precision), f"parity-{precision}")
        try:
            code = proc.wait(timeout=run.args.parity_timeout)
        except subprocess.TimeoutExpired:
            stop(proc, 5.0)
            code = None
        for line in tail(output):
            run.log(f"  {line}")
        written = (run.folder / PARITY_FILES[precision]).is_file() and code is not None
        outcome = "timed out" if code is None else "passed" if code == 0 else "FAILED" if written else f"exit {code}"
        run.log(f"[gpu_run] parity {precision}: {outcome} in {time.perf_counter() - began - spent:.0f} s")
        done.append(f"{precision} {outcome}")
    return ", ".join(done)


# ---------------------------------------------------------------------------------- (b) the benchmark


def benchmark_part(run: GpuRun) -> str:
    """The benchmark's plan (its engines, variants and batch sizes), each measurement's repeats
    together, no measurement started once the part's budget (or the run's) is spent."""
    from benchmarks.orchestrate import run_benchmark
    from benchmarks.plan import parse_batch_sizes, parse_variants
    from fmnist.engines import parse_engines

    a = run.args
    budget = min(a.benchmark_budget, run.budget.left())
    result = run_benchmark(
        engines_chosen=list(parse_engines(a.benchmark_engines, at_least=1)),
        device=a.device,
        batch_sizes=parse_batch_sizes(a.batch_size),
        steps=a.steps,
        warmup=a.warmup,
        repeats=a.repeats,
        config=a.config,
        out=run.folder,
        variants=parse_variants(a.variants),
        data_dir=a.data_dir,
        data="real",
        timeout=a.timeout,
        budget_seconds=budget,
        repeats_together=True,
        log=run.log,
    )
    repeats = [r for m in result["measurements"] for r in m.get("per_repeat_train_images_per_s", [])]
    whole = sum(
        m["status"] == "ok" and len(m.get("per_repeat_train_images_per_s", [])) == a.repeats
        for m in result["measurements"]
    )
    total = len(result["measurements"])
    said = f"{whole} of {total} measurements with all {a.repeats} repeats ({len(repeats)} repeats ran)"
    return said if repeats else f"failed: no measurement ran ({said})"


# ---------------------------------------------------------------------------------- (c) the trainings


def strong_argv(run: GpuRun) -> list[str]:
    a = run.args
    argv = ["-m", "fmnist_cli", "compare", "--config", str(a.strong_config), "--engines", a.strong_engines]
    argv += ["--seeds", *map(str, a.strong_seeds), "--jobs", str(a.strong_jobs), "--out", str(a.strong_out)]
    for flag, value in (("--epochs", a.strong_epochs), ("--limit-train", a.strong_limit_train)):
        argv += [flag, str(value)] if value else []
    argv += ["--limit-test", str(a.strong_limit_test)] if a.strong_limit_test else []
    return argv + run.data_args()


def strong_part(run: GpuRun) -> str:
    """`fmnist compare --jobs N` over the engines and seeds (its order trains the first seed of
    every engine first), until it ends or the run's time is up: then it is interrupted as a Ctrl-C
    would (each run keeps its last finished epoch, and the same command continues it). The
    trainings' summary (`gpu_strong`) is rewritten as they go and once they end."""
    a = run.args
    deadline = run.budget.began + run.budget.total
    run.log(
        f"[gpu_run] strong: {a.strong_config} {a.strong_engines} seeds {' '.join(map(str, a.strong_seeds))},"
        f" {a.strong_jobs} at once, {max(run.budget.left(), 0):.0f} s left [{run.budget.elapsed():.0f} s]"
    )
    proc, output = start(run, strong_argv(run), "strong")
    stopped, written = None, time.perf_counter()
    while proc.poll() is None:
        if time.perf_counter() >= deadline:
            stopped = f"stopped after {run.budget.total:.0f} s of the run (its time budget)"
            run.log(f"[gpu_run] strong: {stopped}: interrupting the trainings")
            stop(proc, STOP_GRACE_SECONDS)
            break
        if time.perf_counter() - written > SUMMARY_EVERY_SECONDS:
            write_summary(a, run.folder, run.budget.elapsed(), proc.returncode, None)
            run.publish("strong")
            written = time.perf_counter()
        time.sleep(1.0)
    for line in tail(output, keep=lambda line: line.startswith(("[compare]", "[jobs]", "fmnist:", "report"))):
        run.log(f"  {line}")
    summary = write_summary(a, run.folder, run.budget.elapsed(), proc.returncode, stopped)
    if stopped is None and proc.returncode != 0:  # it ended by itself, and not well
        return f"failed: fmnist compare exit {proc.returncode}; {summary['outcome']}"
    return summary["outcome"]


PARTS: dict[str, Callable[[GpuRun], str]] = {
    "parity": parity_part,
    "benchmark": benchmark_part,
    "strong": strong_part,
}
#: What each part writes into the results folder, the files that come back from the GPU machine.
PART_FILES = {
    "parity": tuple(PARITY_FILES.values()),
    "benchmark": ("benchmark.json", "benchmark.md", "benchmark.png"),
    "strong": (STRONG_FILE,),
}


def run_part(run: GpuRun, name: str) -> str:
    """One part, its error (one that a user can fix, or a bug) its outcome rather than the run's end."""
    try:
        return PARTS[name](run)
    except FmnistError as exc:
        return f"failed: {exc}"
    except Exception as exc:  # a bug in one part: the others still run, and the log says which
        return f"failed: {type(exc).__name__}: {exc}"


def scratch_folder() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="fmnist-gpu-run-")
