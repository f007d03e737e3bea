"""`fmnist convert`: a run carried to another engine, finished or interrupted, with everything a
training holds (`fmnist.run_state`: weights and batch-norm statistics, Adam's moments and step
count, the epoch, and with them the schedule's and the batch order's position), as a run
directory of that engine: every command takes it, and `fmnist train --resume` finishes an
interrupted one there.

The source engine reads its files and the target engine writes its own, each in a process of its
own (`fmnist.engine_job`: Keras and torch do not always share one), into a folder beside the
output that is renamed onto it only once the result is checked:
- the state read back from the written files equals the state written (weights and moments to
  the bit: every layout change is a transpose; the counters exactly);
- the logits of the written weights equal the source's on the run's test images within
  `fmnist parity`'s float32 rule (1e-5, or twice either framework's own float32 rounding against
  its float64 result), with every predicted class the same.
A finished run is tested again by the target engine from its written model file
(test_metrics.json, test_predictions.npz, the figures); an interrupted one gets the target's
epoch checkpoint, its CPU time so far and its metrics rows. Bad input is refused before anything
is written or any framework loads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from export.check import compare_logits
from fmnist import engines, rundir
from fmnist.config import Config, load_config
from fmnist.datasets import load_fashion_mnist
from fmnist.engine_job import call, run_jobs
from fmnist.errors import FmnistError, RunDirError
from fmnist.metrics import test_metrics
from fmnist.run_state import check_carryable, check_consistent, differences
from fmnist.splits import make_splits, num_batches

DTYPES = ("float32", "float64")


class ConversionCheckFailed(FmnistError):
    """The written run does not hold what was read: the one line says what differs."""


def _source(run_dir: Path) -> tuple[dict[str, Any], str, Config, bool]:
    """(run.json, engine, config, finished) of the run to convert; refusals in one line."""
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is not a run directory")
    info = rundir.read_run_info(run_dir)
    if info is None:
        raise RunDirError(f"{run_dir} holds no run of fmnist (no valid {rundir.RUN_INFO_FILE}): nothing to convert")
    config = load_config(run_dir / rundir.CONFIG_FILE)
    finished = (run_dir / rundir.TEST_METRICS_FILE).is_file()
    checkpoint = run_dir / rundir.CHECKPOINT_DIR
    if not finished and not (checkpoint.is_dir() and any(p.name != "cpu_seconds.json" for p in checkpoint.iterdir())):
        raise RunDirError(f"{run_dir} is neither finished nor holds an epoch checkpoint: nothing to convert")
    return info, rundir.named_engine(info) or "", config, finished


def default_out(run_dir: Path, engine: str) -> Path:
    """`<RUN_DIR>-<engine>`, beside the run."""
    run_dir = Path(run_dir).resolve()
    return run_dir.with_name(f"{run_dir.name}-{engine}")


def check_out(out: Path, run_dir: Path) -> None:
    """The output must be a new or empty folder outside the run: a conversion adds to nothing."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out} exists and is not a directory; --out must name a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise RunDirError(f"{out} holds files already; --out must name a new or empty folder")
    inside = out.resolve()
    if inside == run_dir.resolve() or run_dir.resolve() in inside.parents:
        raise RunDirError(f"{out} lies inside the run being converted; choose a folder outside {run_dir}")


def plan(run_dir: Path, to: str, out: Path | None) -> tuple[dict[str, Any], str, Config, bool, Path]:
    """Every refusal, before any file is written or framework loaded: (run.json, source engine,
    config, finished, output folder)."""
    run_dir = Path(run_dir)
    info, source, config, finished = _source(run_dir)
    target = engines.engine(to)  # an unknown name: one line naming the known ones
    if source == to:
        raise FmnistError(f"{run_dir} is a run of {to} already: choose another engine with --to")
    for spec in (engines.engine(source), target):
        if not spec.offers("state"):
            raise FmnistError(f"engine '{spec.name}' cannot read or write a run's training state (no state capability)")
    check_carryable(config, finished)
    out = Path(out) if out is not None else default_out(run_dir, to)
    check_out(out, run_dir)
    return info, source, config, finished, out


def _logit_calls(run_dir: Path, images: np.ndarray) -> list[dict[str, Any]]:
    return [call("run_logits", run_dir=str(run_dir), images=images, dtype=d) for d in DTYPES]


def logits_check(source: list[np.ndarray], target: list[np.ndarray]) -> dict[str, Any]:
    """The converted weights' float32 logits against the source's under parity's rule; the
    rounding allowance is either engine's own float32 against float64 (each pair: float32, float64)."""
    rounding = max(float(np.abs(pair[0] - pair[1]).max()) for pair in (source, target))
    return compare_logits(target[0], np.asarray(source[0], np.float64), rounding)


def _copy_records(run_dir: Path, folder: Path, epochs: int, finished: bool) -> None:
    """config.yaml, the metrics rows of the epochs carried, TensorBoard's scalars; for a finished
    run its test_metrics.json, what marks a run finished to the engines' readers (rewritten once
    the target has measured the test set), for an unfinished one its CPU time so far (a resume
    adds to it)."""
    shutil.copy2(run_dir / rundir.CONFIG_FILE, folder / rundir.CONFIG_FILE)
    if finished:
        shutil.copy2(run_dir / rundir.TEST_METRICS_FILE, folder / rundir.TEST_METRICS_FILE)
    shutil.copy2(run_dir / rundir.METRICS_FILE, folder / rundir.METRICS_FILE)
    rundir.MetricsCSV(folder / rundir.METRICS_FILE).truncate(epochs)
    if (run_dir / rundir.TENSORBOARD_DIR).is_dir():
        shutil.copytree(run_dir / rundir.TENSORBOARD_DIR, folder / rundir.TENSORBOARD_DIR)
    cpu = run_dir / rundir.CPU_TIME_FILE
    if not finished and cpu.is_file():
        (folder / rundir.CHECKPOINT_DIR).mkdir()
        shutil.copy2(cpu, folder / rundir.CPU_TIME_FILE)


def _finish_measurement(
    folder: Path, run_dir: Path, to: str, config: Config, splits: Any, logits: np.ndarray, answer: dict, origin: dict
) -> dict[str, Any]:
    """test_metrics.json, test_predictions.npz and the figures of a finished run, its test set
    measured again by the target engine from the model file it wrote; what the source recorded of
    its training (times, epochs, threads) is kept."""
    from fmnist.training import common_versions, write_figures  # plots: seaborn, a second to import

    metrics = test_metrics(logits, splits.test.labels)
    rows = rundir.read_metrics(folder / rundir.METRICS_FILE)
    result = {
        **rundir.read_json(run_dir / rundir.TEST_METRICS_FILE),
        "engine": to,
        **metrics,
        "versions": {**common_versions(), **answer["versions"]},
        "converted_from": origin,
    }
    rundir.write_predictions(folder / rundir.PREDICTIONS_FILE, logits, splits.test.labels)
    write_figures(folder, to, config, rows, metrics, splits, logits)
    rundir.write_json(folder / rundir.TEST_METRICS_FILE, result)  # last, as a training writes it
    return result


def convert_run(run_dir: Path, to: str, out: Path | None = None, data_dir: str | None = None) -> dict[str, Any]:
    """Carry the run in `run_dir` to engine `to` as a run directory at `out` (default
    `<RUN_DIR>-<to>`); returns what was checked, and where it went."""
    run_dir = Path(run_dir)
    info, source, config, finished, out = plan(run_dir, to, out)
    from fmnist.training import check_same_data  # after the refusals: it imports the plots (a second)

    data = load_fashion_mnist(data_dir)
    check_same_data(run_dir, info, data.sha256)
    splits = make_splits(data, config)
    steps_per_epoch = num_batches(len(splits.train), config.train.batch_size)
    images = splits.test.images

    read = run_jobs([(source, [call("read_state", run_dir=str(run_dir)), *_logit_calls(run_dir, images)])])[0]
    state, *source_logits = read["results"]
    check_consistent(state, steps_per_epoch)
    state["steps_per_epoch"] = steps_per_epoch
    origin = {
        "engine": source,
        "run": run_dir.resolve().name,  # the folder's name: a run is published where this machine's paths mean nothing
        "finished": finished,
        "epochs": state["epochs"],
        "steps": state["steps"],
    }

    out.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _copy_records(run_dir, folder, state["epochs"], finished)
        record = {**info, "engine": to, "converted_from": origin}
        rundir.write_run_info(folder, record)  # the target's reader asks the marker which engine it is
        calls = [
            call("write_state", config, state=state, run_dir=str(folder), finished=finished),
            call("read_state", run_dir=str(folder)),
            *_logit_calls(folder, images),
        ]
        if finished:
            calls.append(call("predict", run_dir=str(folder), images=images, batch_size=config.train.eval_batch_size))
        answer = run_jobs([(to, calls)])[0]
        _, written, *rest = answer["results"]
        check = {"state": differences(state, written), "logits": logits_check(source_logits, rest[:2])}
        _refuse_failed(check)
        result = {
            "source": source,
            "engine": to,
            "run_dir": str(out),
            "finished": finished,
            "epochs": state["epochs"],
            "steps": state["steps"],
            "check": check,
        }
        if finished:
            result["test"] = _finish_measurement(folder, run_dir, to, config, splits, rest[2], answer, origin)
        rundir.write_run_info(folder, {**record, "conversion_check": check})
        if out.is_dir():
            out.rmdir()  # empty (check_out): the folder takes its place
        os.replace(folder, out)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _refuse_failed(check: dict[str, Any]) -> None:
    """What the target wrote must be what was read, and compute what the source computes."""
    state, logits = check["state"], check["logits"]
    exact = [k for k in ("weights", "m", "v") if state[k] not in (None, 0.0)]
    if exact or not (state["epochs_equal"] and state["steps_equal"]):
        raise ConversionCheckFailed(
            f"the written run reads back differently ({', '.join(exact) or 'epochs or steps'}): nothing kept"
        )
    if not logits["passed"]:
        raise ConversionCheckFailed(
            f"the converted weights' logits differ by {logits['max_abs_logit_diff']:.3g} (allowed"
            f" {logits['allowed']:.3g}), {logits['identical_predictions']} of {logits['images']} classes"
            " the same: nothing kept"
        )


def summary_lines(result: dict[str, Any]) -> list[str]:
    """What `fmnist convert` prints."""
    logits = result["check"]["logits"]
    what = "finished run" if result["finished"] else f"run interrupted after epoch {result['epochs']}"
    lines = [
        f"{result['source']} {what} -> {result['engine']}: {result['run_dir']}",
        f"carried: weights, batch-norm statistics, optimizer state at step {result['steps']},"
        f" epoch {result['epochs']} (schedule and batch order continue there); read back identical",
        f"logits on {logits['images']:,} test images: max |diff| {logits['max_abs_logit_diff']:.2e}"
        f" (allowed {logits['allowed']:.2e}), {logits['identical_predictions']:,} identical classes",
    ]
    if result["finished"]:
        lines.append(f"test accuracy measured by {result['engine']}: {result['test']['test_accuracy']:.2%}")
    else:
        lines.append(f"finish it with: fmnist train --resume {result['run_dir']}")
    return lines
