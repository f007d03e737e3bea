"""Time to accuracy on a fixed budget, airbench style (`fmnist benchmark --time-to-accuracy 0.91`):
each engine trains the config's whole epoch budget once per seed, each run a fresh process
(a job of kind "time-to-accuracy", `fmnist.job`), the engines alternating; the test
set is measured once, at the end, and a run reaches the target when that final accuracy is at
least the target.

Each worker trains as `fmnist train` does (the config's network, optimizer, per-epoch schedule,
batch order, the project's own data pipeline and split), the seed replaced by the run's, without
validation: the engine's `fit_budget` (`fmnist.capabilities.Training`). Its seconds run from
the parent's clock reading just before it starts the process to the worker's when the final test
accuracy is known: interpreter start, imports, data loading, model building, training and the
test pass, not the framework's teardown after it. The test pass runs in the framework's
end-of-training hook, before that teardown. The worker's own clocks give
the breakdown; the parent also keeps the process's whole wall time.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()
_STARTED_AT = time.time()  # the worker's first line, on the clock the parent reads too

import tempfile  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from executors import ExecutorChoice, Job, JobResult, open_executor  # noqa: E402
from executors.job import IN, OUT  # noqa: E402
from fmnist import job  # noqa: E402
from fmnist.message import message_bytes  # noqa: E402
from benchmarks.time_to_accuracy_summary import summarize  # noqa: E402

#: The job kind each run is (`fmnist.job`; declared in pyproject.toml).
WORKER_JOB = "time-to-accuracy"


# ---------------------------------------------------------------------------------- the worker


class _FinalTest:
    """The clock of one run: `start` just before fit, `measure` (the one test pass) from the
    framework's end-of-training hook (the engine's `fit_budget` calls both)."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels
        self.fit_began = 0.0
        self.train_seconds = 0.0
        self.test_eval_seconds = 0.0
        self.accuracy: float | None = None
        self.known_at: float | None = None  # time.time() once the accuracy is known

    def start(self) -> None:
        self.fit_began = time.perf_counter()

    def measure(self, predict: Callable[[], np.ndarray]) -> None:
        began = time.perf_counter()
        self.train_seconds = began - self.fit_began
        logits = predict()
        self.accuracy = float(np.mean(np.argmax(logits, axis=1) == self.labels))
        self.known_at = time.time()
        self.test_eval_seconds = time.perf_counter() - began


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """One (engine, seed) run in this process; never raises (a failure is a row with its error)."""
    out: dict[str, Any] = {"engine": spec["engine"], "seed": spec["seed"]}
    try:
        from fmnist import engines

        engine = engines.engine(spec["engine"]).capability("training")  # the framework, set up as the engine runs it
        import_seconds = time.perf_counter() - _T0
        from fmnist.config import config_from_dict, with_overrides
        from fmnist.datasets import load_fashion_mnist
        from fmnist.precision import resolve_config
        from fmnist.splits import make_splits

        # max_epochs None keeps the config's; the split keeps the config's data.split_seed.
        overrides = {"train.epochs": spec["max_epochs"], "seed": spec["seed"]}
        config = with_overrides(config_from_dict(spec["config"]), overrides)
        # train.precision auto as `fmnist train` resolves it, for the device the engine trains on
        config = resolve_config(config, engine.training_device(config))
        began = time.perf_counter()
        splits = make_splits(load_fashion_mnist(), config)  # FMNIST_DATA_DIR, set by the executor
        data_seconds = time.perf_counter() - began
        final = _FinalTest(splits.test.labels.astype(np.int64))
        began = time.perf_counter()
        epochs = engine.fit_budget(config, splits, final.start, final.measure)
        if final.known_at is None:
            raise RuntimeError("training ended without its final test pass")
        from benchmarks.environment import framework_versions  # after the clock: nothing timed loads it

        out["versions"] = framework_versions(spec["engine"])
        out.update(
            {
                "status": "ok",
                "test_accuracy": final.accuracy,
                "epochs": epochs,
                "max_epochs": config.train.epochs,
                "precision": config.train.precision,
                "worker_started_at": _STARTED_AT,
                "accuracy_known_at": final.known_at,
                "import_seconds": import_seconds,
                "data_seconds": data_seconds,
                "build_seconds": final.fit_began - began,
                "train_seconds": final.train_seconds,
                "test_eval_seconds": final.test_eval_seconds,
            }
        )
    except Exception as exc:
        out.update({"status": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
    return out


def time_to_accuracy_job(request: dict[str, Any], out: Path) -> dict[str, Any]:
    """The job kind "time-to-accuracy" (`fmnist.job`): one (engine, seed) run, as `request["spec"]` asks."""
    return run(request["spec"])


# ---------------------------------------------------------------------------------- the parent


def run_order(engines: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, int]]:
    """Seed by seed, the engines alternating: keras 0, lightning 0, keras 1, ... so that drift in
    the machine's speed hits both alike."""
    return [(engine, seed) for seed in seeds for engine in engines]


def seconds_between(started_at: float, known_at: float) -> float:
    """The run's seconds: the clock reading on the host that ran it just before it started the
    process, to the worker's once the final accuracy was known (the worker's own start is not
    trusted: interpreter start-up comes before it)."""
    seconds = known_at - started_at
    if seconds <= 0:
        raise ValueError(f"the accuracy known {seconds:.3f} s after the process started: the clock moved")
    return seconds


def _row(result: JobResult, spec: dict[str, Any]) -> dict[str, Any]:
    """One run's row from its job: the worker's result, timed from the job's start."""
    row = job.read_result(result.job.out_dir)
    if row is None:  # a crash (segfault, out of memory) before the worker could write
        row = {"status": "error", "error": result.error or "the worker wrote no result"}
    row.setdefault("engine", spec["engine"])
    row.setdefault("seed", spec["seed"])
    row.update(
        {
            "target": spec["target"],
            "started_at": result.started_at,
            "process_wall_seconds": result.seconds,
            "node": result.node,
            "threads": result.job.threads,
        }
    )
    if row.get("status") == "ok":
        try:
            row["seconds"] = seconds_between(result.started_at, row["accuracy_known_at"])
            row["startup_seconds"] = row["worker_started_at"] - result.started_at
        except ValueError as exc:
            row.update({"status": "error", "error": str(exc)})
        else:
            row["reached"] = row["test_accuracy"] >= spec["target"]
    return row


def run_time_to_accuracy(
    engines: Sequence[str],
    seeds: Sequence[int],
    config: Path,
    target: float,
    max_epochs: int | None,
    data_dir: str | None,
    device: str,
    log=print,
    executor_choice: ExecutorChoice | None = None,
) -> dict[str, Any]:
    """Every (engine, seed) run in `run_order`, on the executor chosen (serial by default: one
    run at a time has the machine to itself); the per-engine summary beside the rows."""
    from fmnist.config import config_to_dict, load_config
    from fmnist.datasets import load_fashion_mnist
    from fmnist.packaged_configs import config_file

    asked = load_config(config_file(config))  # a path, or a packaged config's name
    epochs = max_epochs or asked.train.epochs
    order = run_order(engines, seeds)
    data = load_fashion_mnist(data_dir)
    executor = open_executor(executor_choice or ExecutorChoice(), Path(data.data_dir).resolve(), data.sha256, log)
    log(
        f"[benchmark] time to accuracy: {len(order)} runs of {epochs} epochs, target {target:.2%}:"
        f" {executor.describe()}"
    )
    with tempfile.TemporaryDirectory(prefix="fmnist-time-to-accuracy-") as tmp:
        specs, jobs = [], []
        for engine, seed in order:
            spec = {
                "engine": engine,
                "seed": seed,
                "target": target,
                "max_epochs": max_epochs,
                "config": config_to_dict(asked),  # the config travels with the job: a node may not have the file
                "device": device,
            }
            env = {"TF_CPP_MIN_LOG_LEVEL": "2", **({"CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else {})}
            specs.append(spec)
            jobs.append(
                Job(
                    name=f"{engine} seed {seed}",
                    argv=tuple(job.command(f"{IN}/{job.REQUEST_FILE}", OUT)),
                    out_dir=Path(tmp) / f"{engine}-seed{seed}",
                    threads=executor.threads,
                    inputs={job.REQUEST_FILE: message_bytes(job.request(WORKER_JOB, spec=spec))},
                    env=env,
                )
            )
        try:
            results = executor.run(jobs, Path(tmp) / "logs", "[benchmark]")
        finally:
            executor.close()
        rows = []
        for index, (result, spec) in enumerate(zip(results, specs)):
            row = _row(result, spec)
            row["run_index"] = index
            rows.append(row)
            if row["status"] == "ok":
                log(
                    f"[benchmark] {spec['engine']} seed {spec['seed']}: test accuracy {row['test_accuracy']:.2%}"
                    f" ({'reached' if row['reached'] else 'did not reach'} {target:.2%}) in {row['seconds']:.1f} s"
                    f" (training {row['train_seconds']:.1f} s, process wall {row['process_wall_seconds']:.1f} s)"
                )
            else:
                log(f"[benchmark] {spec['engine']} seed {spec['seed']}: error: {row.get('error')}")
    return {
        "target": target,
        "config": str(config),
        "epochs": epochs,
        "seeds": list(seeds),
        "executor": executor.describe(),
        "summary": summarize(rows, engines),
        "runs": rows,
    }
