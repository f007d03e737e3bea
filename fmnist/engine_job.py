"""Calls to one engine's capabilities (`fmnist.capabilities`) in a process of its own, with
numpy in and out through files: how a tool uses two engines that cannot share a process (two
Keras backends; TensorFlow and torch). `python -m fmnist.engine_job ENGINE REQUEST RESULT` is the
child's entry point.

A call is {"fn": a function of `JOB_FUNCTIONS`, "config": the config as a dict, "kwargs": ...}; arrays in
kwargs and results travel in an .npz (no pickle: a file read is never code run), the rest as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fmnist import engines, launch, rundir
from fmnist.capabilities import JOB_FUNCTIONS
from fmnist.config import Config, config_from_dict, config_to_dict, load_config, with_overrides
from fmnist.engine import Engine
from fmnist.errors import FmnistError

_ARRAY = "__array__"
_SKELETON = "__skeleton__"


def call(fn: str, config: Config | None = None, **kwargs: Any) -> dict[str, Any]:
    """One call of a job: a function of `JOB_FUNCTIONS`, the config it takes (none for predict), its arguments."""
    return {"fn": fn, **({"config": config_to_dict(config)} if config is not None else {}), "kwargs": kwargs}


def on_device(device: str) -> dict[str, str]:
    """What a call is told to compute on `device`: nothing on the CPU (every capability's default:
    the CPU's calls are what they always were), else the device."""
    return {} if device == "cpu" else {"device": device}


def _pack(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(tree, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = tree
        return {_ARRAY: key}
    if isinstance(tree, dict):
        return {str(k): _pack(v, arrays) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_pack(v, arrays) for v in tree]
    if isinstance(tree, np.generic):
        return tree.item()
    return tree


def _unpack(tree: Any, arrays: Any) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {_ARRAY}:
            return arrays[tree[_ARRAY]]
        return {k: _unpack(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_unpack(v, arrays) for v in tree]
    return tree


def write_tree(path: Path, tree: Any) -> None:
    arrays: dict[str, np.ndarray] = {}
    skeleton = _pack(tree, arrays)
    np.savez(path, **arrays, **{_SKELETON: np.array(json.dumps(skeleton))})


def read_tree(path: Path) -> Any:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return _unpack(json.loads(str(arrays.pop(_SKELETON))), arrays)


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
        for i, (engine, calls) in enumerate(jobs):
            request, result, log = (Path(folder) / f"{name}-{i}.{ext}" for name, ext in FILES)
            write_tree(request, calls)
            command = ["-m", "fmnist.engine_job", engine, str(request), str(result)]
            started.append((engine, result, log, launch.start(command, job_environment(engine, device), log)))
        answers = []
        try:
            for engine, result, log, process in started:
                process.wait()
                output = log.read_text(errors="replace")
                last = (output.strip().splitlines() or [""])[-1]
                if process.returncode == REFUSED and last.startswith(REFUSAL):
                    raise FmnistError(f"the {engine} engine's job: {last.removeprefix(REFUSAL)}")
                if process.returncode != 0:
                    raise FmnistError(
                        f"the {engine} engine's job failed (exit {process.returncode}):\n{output[-3000:]}"
                    )
                answers.append(read_tree(result))
        finally:  # one job failed, or this process was interrupted: the others' work is of no use now
            for _, _, _, process in started:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        return answers


#: A job's files in its scratch folder: the calls, the answers (npz: np.savez names them so), its output.
FILES = (("request", "npz"), ("result", "npz"), ("output", "log"))

#: How a job that refuses its calls ends, as `fmnist.errors.exit_code` reports: this exit code, this line.
REFUSED, REFUSAL = 2, "fmnist: error: "


def main(argv: list[str]) -> int:
    """A refusal is one line (the parent shows it as it is); a bug keeps its traceback for the parent to show."""
    engine, request, result = argv
    try:
        write_tree(Path(result), run_calls(engine, read_tree(Path(request))))
    except FmnistError as exc:
        print(f"{REFUSAL}{exc}", file=sys.stderr)
        return REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
