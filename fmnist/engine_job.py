"""Calls to one engine's capabilities (`fmnist.capabilities`) in a process of its own, with
numpy in and out: how a tool uses two engines that cannot share a process (two Keras backends;
TensorFlow and torch). Each is a job of kind "calls" (`fmnist.job`, started by `fmnist.launch`):

    {"job": "calls", "engine": ENGINE, "calls": [call, ...]}

A call is {"fn": a function of `JOB_FUNCTIONS`, "config": the config as a dict, "kwargs": ...};
arrays in kwargs and in the answers travel in the message (`fmnist.message`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fmnist import engines, job, launch, rundir
from fmnist.capabilities import JOB_FUNCTIONS
from fmnist.config import Config, config_from_dict, config_to_dict, load_config, with_overrides
from fmnist.engine import Engine
from fmnist.errors import ERROR_PREFIX, USER_ERROR_EXIT, FmnistError
from fmnist.message import write_message


def call(fn: str, config: Config | None = None, **kwargs: Any) -> dict[str, Any]:
    """One call of a job: a function of `JOB_FUNCTIONS`, the config it takes (none for predict), its arguments."""
    return {"fn": fn, **({"config": config_to_dict(config)} if config is not None else {}), "kwargs": kwargs}


def on_device(device: str) -> dict[str, str]:
    """What a call is told to compute on `device`: nothing on the CPU (every capability's default:
    the CPU's calls are what they always were), else the device."""
    return {} if device == "cpu" else {"device": device}


def run_logits(spec: Engine, run_dir: str, images: np.ndarray, dtype: str) -> np.ndarray:
    """Inference-mode logits of raw images with the weights a run's files hold, in float32 or
    float64 whatever precision it trained in: the engine's `state` read, then its `parity` logits."""
    weights = spec.capability("state").read_state(run_dir)["weights"]
    config = with_overrides(load_config(Path(run_dir) / rundir.CONFIG_FILE), {"train.precision": "float32"})
    return spec.capability("parity").logits(config, weights, images, dtype)


#: Calls a job makes of two capabilities together, written once for every engine: name -> function(engine, ...).
COMPOSED = {"run_logits": run_logits}


def run_calls(engine: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """In this process: {"versions": the engine's, "results": one per call}."""
    spec = engines.engine(engine)
    results = []
    for call in calls:
        kwargs = call.get("kwargs", {})
        if call["fn"] in COMPOSED:
            results.append(COMPOSED[call["fn"]](spec, **kwargs))
            continue
        if call["fn"] not in JOB_FUNCTIONS:
            known = ", ".join([*JOB_FUNCTIONS, *COMPOSED])
            raise FmnistError(f"an engine job calls one of {known}, not {call['fn']!r}")
        fn = getattr(spec.capability(JOB_FUNCTIONS[call["fn"]]), call["fn"])
        results.append(fn(config_from_dict(call["config"]), **kwargs) if "config" in call else fn(**kwargs))
    return {"versions": spec.capability("training").versions(), "results": results}


def job_environment(engine: str, device: str | None) -> dict[str, str]:
    """A job's environment: this process's, and what the engine declares for `device` (None: as it is)."""
    declared = engines.engine(engine).device_environment.get(device, {}) if device is not None else {}
    return {**os.environ, **declared}


def run_jobs(
    jobs: list[tuple[str, list[dict[str, Any]]]], in_process: bool = False, device: str | None = None
) -> list[dict[str, Any]]:
    """Each (engine, calls) in a child process of its own, all at once; their answers in order.
    device: the device the calls compute on, whose environment each engine declares (none on the
    CPU's jobs sees a GPU); None: this process's environment as it is. A job that refuses its
    calls (an `FmnistError`: no GPU for "cuda") is one line here. in_process: here, one after
    another (engines that can share a process, those that need modules imported before the others'
    frameworks first; tests use it to plant faults), in this process's environment."""
    if in_process:
        order = sorted(range(len(jobs)), key=lambda i: not engines.engine(jobs[i][0]).import_first)
        done = {i: run_calls(*jobs[i]) for i in order}
        return [done[i] for i in range(len(jobs))]
    with tempfile.TemporaryDirectory(prefix="fmnist-engine-job-") as folder:
        started = []
        for i, (engine, asked) in enumerate(jobs):
            request, out, log = Path(folder) / f"request-{i}.npz", Path(folder) / f"out-{i}", Path(folder) / f"{i}.log"
            write_message(request, job.request("calls", engine=engine, calls=asked))
            process = launch.start(job.command(request, out), job_environment(engine, device), log)
            started.append((engine, out, log, process))
        answers = []
        try:
            for engine, out, log, process in started:
                process.wait()
                output = log.read_text(errors="replace")
                last = (output.strip().splitlines() or [""])[-1]
                if process.returncode == USER_ERROR_EXIT and last.startswith(ERROR_PREFIX):
                    raise FmnistError(f"the {engine} engine's job: {last.removeprefix(ERROR_PREFIX)}")
                if process.returncode != 0:
                    raise FmnistError(
                        f"the {engine} engine's job failed (exit {process.returncode}):\n{output[-3000:]}"
                    )
                answers.append(job.read_result(out))
        finally:  # one job failed, or this process was interrupted: the others' work is of no use now
            for _, _, _, process in started:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        return answers


def calls(request: dict[str, Any], out: Path) -> dict[str, Any]:
    """The job kind "calls" (`fmnist.job`): the request's calls of its engine, answered here."""
    return run_calls(request["engine"], request["calls"])
