"""What the GPU run's trainings (`benchmarks.gpu_parts.strong_part`, an `fmnist compare --jobs`)
came to, as one file that comes back from the GPU machine (`strong.json`): per engine and seed,
finished, unfinished (the epochs it finished, resumable with the same command) or not started;
each finished epoch's loss, validation accuracy and seconds; what the training printed of its
precision and device; the test accuracy of a finished run, and the compare's verdicts once all finished.

Read from the compare's folder as it stands, so it can be written while the trainings run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from compare.report import LOGS_DIR
from compare.runner import run_dir_for
from fmnist import rundir

STRONG_FILE = "strong.json"
#: Per epoch, what the summary keeps of a run's metrics.csv.
EPOCH_COLUMNS = ("epoch", "train_loss", "val_accuracy", "seconds")


#: The lines a training prints at its start that say where it runs: its precision (under `auto`
#: with the device it was resolved for) and Lightning's accelerator.
START_LINES = ("precision:", "GPU available:")


def start_lines(run_dir: Path, job_log: Path) -> list[str]:
    """What the training printed of its precision and device (`START_LINES`), from its console
    output: in the run directory once the job ended, in the compare's logs while it runs."""
    for path in (run_dir / rundir.CONSOLE_LOG_FILE, job_log):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        found = [line.strip() for line in text.splitlines()[:40] if line.startswith(START_LINES)]
        if found:
            return found
    return []


def run_summary(out: Path, engine: str, seed: int, epochs: int) -> dict[str, Any]:
    """One planned run of the compare, as its folder shows it now."""
    run_dir = run_dir_for(out, engine, seed)
    job_log = out / LOGS_DIR / f"{rundir.safe_name(f'{engine} seed {seed}')}.log"
    info = rundir.read_run_info(run_dir) if run_dir.is_dir() else None
    row: dict[str, Any] = {"engine": engine, "seed": seed, "epochs_planned": epochs}
    if info is None:
        return {**row, "status": "not started", "epochs_done": 0}
    metrics = run_dir / rundir.METRICS_FILE
    rows = rundir.read_metrics(metrics) if metrics.is_file() else []
    finished = (run_dir / rundir.TEST_METRICS_FILE).is_file()
    row.update(
        status="finished" if finished else "unfinished",
        epochs_done=len(rows),
        precision=info.get("precision"),
        precision_asked=info.get("precision_asked"),
        printed=start_lines(run_dir, job_log),
        epochs=[{k: r[k] for k in EPOCH_COLUMNS if k in r} for r in rows],
    )
    if finished:
        row["test_accuracy"] = rundir.read_json(run_dir / rundir.TEST_METRICS_FILE).get("test_accuracy")
    return row


def outcome(runs: list[dict[str, Any]], stopped: str | None) -> str:
    """One line: how many runs finished, how far the others got, why they stopped."""
    finished = [r for r in runs if r["status"] == "finished"]
    partial = [
        f"{r['engine']} seed {r['seed']} {r['epochs_done']}/{r['epochs_planned']}"
        for r in runs
        if r["status"] == "unfinished"
    ]
    waiting = sum(r["status"] == "not started" for r in runs)
    parts = [f"{len(finished)} of {len(runs)} runs finished"]
    if partial:
        parts.append(f"unfinished (epochs done): {', '.join(partial)}")
    if waiting:
        parts.append(f"{waiting} not started")
    return "; ".join(parts) + (f" ({stopped})" if stopped else "")


def write_summary(a: Any, folder: Path, seconds: float, exit_code: int | None, stopped: str | None) -> dict[str, Any]:
    """`strong.json` in the results `folder`, now: `a` the GPU run's options (`benchmarks.gpu_run`),
    `seconds` into the run, the compare's exit code (None while it runs), why it was stopped."""
    from fmnist.config import load_config

    epochs = a.strong_epochs or load_config(a.strong_config).train.epochs
    engines = [e.strip() for e in a.strong_engines.split(",") if e.strip()]
    runs = [run_summary(Path(a.strong_out), e, s, epochs) for s in a.strong_seeds for e in engines]
    summary: dict[str, Any] = {
        "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "config": str(a.strong_config),
        "engines": engines,
        "seeds": list(a.strong_seeds),
        "jobs": a.strong_jobs,
        "overrides": {
            "epochs": a.strong_epochs,
            "limit_train": a.strong_limit_train,
            "limit_test": a.strong_limit_test,
        },
        "device": a.device,
        "run_seconds": round(seconds, 1),
        "compare_exit": exit_code,
        "stopped": stopped,
        "outcome": outcome(runs, stopped),
        "runs": runs,
    }
    report = Path(a.strong_out) / "summary.json"
    if exit_code == 0 and report.is_file():  # every run finished: the compare's own verdicts
        summary["verdicts"] = [
            {"engines": p["engines"], "verdict": p["equivalence"]["verdict"]}
            for p in json.loads(report.read_text())["pairs"]
        ]
    rundir.write_json(folder / STRONG_FILE, summary)
    return summary
