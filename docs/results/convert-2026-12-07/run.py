"""The full-size proof of `fmnist convert` in docs/parity.md ("Carrying a run to another engine"):
a 15-epoch baseline run of Keras (seed 0) stopped with Ctrl-C after epoch 7, carried to
Lightning, carried back to Keras (the round trip: the states compared), the Lightning run
finished with `fmnist train --resume`, and the finished run carried to Keras again (its logits on
all 10,000 test images against Lightning's). Writes summary.json here and lands the finished
Lightning run's result files in runs/.

    FMNIST_DATA_DIR=... python docs/results/convert-2026-12-07/run.py WORK_DIR
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from fmnist import rundir
from fmnist.engine_job import call, run_jobs
from fmnist.run_state import differences

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
COMMITTED = REPO / "docs/results/engines-2026-12-04/compare/summary.json"
STOP_AFTER = 7
THREADS = "1"


def fmnist(*args: str) -> None:
    print("$ fmnist", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "fmnist_cli", *args], check=True)


def interrupted_training(run_dir: Path) -> None:
    """`fmnist train` of the 15-epoch baseline, Ctrl-C (SIGINT) once epoch STOP_AFTER is checkpointed."""
    command = [sys.executable, "-m", "fmnist_cli", "train", "--engine", "keras", "--config", "baseline"]
    command += ["--seed", "0", "--threads", THREADS, "--run-dir", str(run_dir)]
    print("$", " ".join(command[2:]), flush=True)
    # SIGINT as at a terminal: a process started in the background inherits it ignored.
    proc = subprocess.Popen(command, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    meta = run_dir / rundir.CHECKPOINT_DIR / "training_metadata.json"
    while not (meta.is_file() and json.loads(meta.read_text())["epoch"] == STOP_AFTER):
        if proc.poll() is not None:
            raise SystemExit(f"the training ended (exit {proc.returncode}) before epoch {STOP_AFTER}")
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    print(f"sent SIGINT after epoch {STOP_AFTER}: exit {proc.wait()}", flush=True)


def spread(summary: dict) -> dict:
    """The committed baseline runs' test accuracies (keras and lightning, seeds 0-2) and their spread."""
    values = [v for e in ("keras", "lightning") for v in summary["backends"][e]["test_accuracy"]["values"]]
    mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
    return {
        "source": str(COMMITTED.relative_to(REPO)),
        "values": values,
        "mean": mean,
        "std": std,
        "min": min(values),
        "max": max(values),
        "mean_minus_2std": mean - 2 * std,
        "mean_plus_2std": mean + 2 * std,
    }


def main(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    keras_run, lightning_run = work / "baseline-keras-seed0", work / "baseline-keras-seed0-lightning"
    back, finished_back = work / "round-trip-keras", work / "finished-keras"
    interrupted_training(keras_run)
    fmnist("convert", str(keras_run), "--to", "lightning", "--out", str(lightning_run), "--threads", THREADS)
    fmnist("convert", str(lightning_run), "--to", "keras", "--out", str(back), "--threads", THREADS)
    original, returned = run_jobs(
        [("keras", [call("read_state", run_dir=str(keras_run)), call("read_state", run_dir=str(back))])]
    )[0]["results"]
    fmnist("train", "--resume", str(lightning_run), "--threads", THREADS)
    fmnist("convert", str(lightning_run), "--to", "keras", "--out", str(finished_back), "--threads", THREADS)

    finished = rundir.read_json(lightning_run / rundir.TEST_METRICS_FILE)
    committed = spread(json.loads(COMMITTED.read_text()))
    accuracy = finished["test_accuracy"]
    summary = {
        "interrupted_after_epoch": STOP_AFTER,
        "carried": rundir.read_json(lightning_run / rundir.RUN_INFO_FILE)["converted_from"],
        "conversion_check_keras_to_lightning": rundir.read_json(lightning_run / rundir.RUN_INFO_FILE)[
            "conversion_check"
        ],
        "round_trip_keras_lightning_keras": {
            "differences": differences(original, returned),
            "steps": returned["steps"],
        },
        "finished_in_lightning": {
            k: finished[k] for k in ("test_accuracy", "test_loss", "epochs_trained", "resumed", "cpu_seconds")
        },
        "finished_run_to_keras_check": rundir.read_json(finished_back / rundir.RUN_INFO_FILE)["conversion_check"],
        "committed_spread": committed,
        "within_min_max": committed["min"] <= accuracy <= committed["max"],
        "within_2std": committed["mean_minus_2std"] <= accuracy <= committed["mean_plus_2std"],
    }
    (HERE / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    landed = HERE / "runs" / lightning_run.name
    landed.mkdir(parents=True, exist_ok=True)
    for name in (
        rundir.CONFIG_FILE,
        rundir.METRICS_FILE,
        rundir.TEST_METRICS_FILE,
        rundir.RUN_INFO_FILE,
        rundir.PREDICTIONS_FILE,
    ):
        shutil.copy2(lightning_run / name, landed / name)  # predictions keep a digest of the labels, not the labels
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
