"""Run-directory layout and I/O, the same for every engine.

Files are written atomically (temp file in the same folder, then rename), so a crash never
leaves a half-written artifact under its final name; `metrics.csv` grows one flushed row per
epoch, so a crash keeps every finished epoch.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, SupportsFloat

import numpy as np

from fmnist import engines
from fmnist.errors import RunDirError

METRICS_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds")

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
TEST_METRICS_FILE = "test_metrics.json"
EVALUATION_FILE = "evaluation.json"
PREDICTIONS_FILE = "test_predictions.npz"  # logits and a digest of their labels: per-image agreement between engines
SUMMARY_FILE = "summary.txt"
CONSOLE_LOG_FILE = "console.log"  # what the training printed, where an executor of `fmnist compare` ran it
CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion_matrix.png"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_DIR = "checkpoints"  # the last finished epoch, for --resume; removed when the run completes
CPU_TIME_FILE = f"{CHECKPOINT_DIR}/cpu_seconds.json"  # CPU time of the attempts so far, summed on --resume
RUN_INFO_FILE = "run.json"  # the run marker, written first: engine, status, the settings it was made with
MIN_FREE_BYTES = 100 * 2**20  # checkpoints, model and logs of one run take well under this
#: A finished run's results without its model, checkpoints and logs: what `fmnist compare --runs`
#: reads, and a few hundred kB to keep (in a repository, say) where the run directory will not last.
RESULT_FILES = (CONFIG_FILE, METRICS_FILE, TEST_METRICS_FILE, PREDICTIONS_FILE)
#: Everything a run writes at the top of its directory (files, and the two folders): all that
#: `--overwrite` (and `compare --rerun-stale`) may remove. A feature that adds a file to a run
#: directory adds its name here; anything else in the folder is the user's and stays.
ONNX_FILE = "model.onnx"  # `fmnist export`'s default output: the model for onnxruntime and `fmnist serve`
EXPORT_REPORT_FILE = "export.json"  # the export's check against the framework's own float32 model
_RUN_FILES = (
    RUN_INFO_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    TEST_METRICS_FILE,
    EVALUATION_FILE,
    PREDICTIONS_FILE,
    SUMMARY_FILE,
    CONSOLE_LOG_FILE,
    CURVES_FILE,
    CONFUSION_FILE,
    ONNX_FILE,
    EXPORT_REPORT_FILE,
    TENSORBOARD_DIR,
    CHECKPOINT_DIR,
)


def run_artifacts() -> tuple[str, ...]:
    """`_RUN_FILES` and every installed engine's model file (read from the engines' declarations
    when asked, not when the core is imported: the core imports no engine)."""
    return (*_RUN_FILES, *engines.model_files())


_WRITE_PROBE = ".write-test"
_UMASK = os.umask(0)
os.umask(_UMASK)


def default_run_dir(config_name: str, engine: str, seed: int, root: Path = Path("runs")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return root / f"{config_name}-{engine}-seed{seed}-{stamp}"


def check_run_dir(path: Path, overwrite: bool = False) -> None:
    """The refusals of `prepare_run_dir`, writing nothing: `fmnist train` asks them before it loads
    a framework, so a wrong --run-dir costs a second, not the seconds of an import."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run directory {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if read_run_info(path) is None:
            raise RunDirError(
                f"run directory {path} is not empty and holds no run of fmnist (no valid"
                f" {RUN_INFO_FILE}); refusing to write into it, --overwrite or not: choose a new"
                " or empty --run-dir"
            )
        if not overwrite:
            raise RunDirError(f"run directory {path} already holds a run; choose another --run-dir or pass --overwrite")


def prepare_run_dir(path: Path, overwrite: bool = False) -> Path:
    """Create the run directory, refusing to mix a new run into a finished or running one.

    A folder that is not empty must hold a run of this project (its `run.json`): then
    `overwrite` removes that run's own artifacts (`run_artifacts()`) and nothing else. A
    non-empty folder without one is refused, `overwrite` or not: it holds someone's files.
    Checked before training starts, so a bad path costs seconds, not an epoch.
    """
    path = Path(path)
    check_run_dir(path, overwrite)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / _WRITE_PROBE
        probe.write_bytes(b"x" * 4096)
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"cannot write to run directory {path}: {exc.strerror or exc}") from None
    free = shutil.disk_usage(path).free
    if free < MIN_FREE_BYTES:
        raise RunDirError(
            f"only {free / 2**20:.0f} MiB free where {path} lies; a run needs about"
            f" {MIN_FREE_BYTES / 2**20:.0f} MiB for checkpoints, model and logs"
        )
    if overwrite:
        remove_run_artifacts(path)
    return path


def read_run_info(run_dir: Path) -> dict[str, Any] | None:
    """The run marker (`run.json`) of a folder, or None when it has none a run of fmnist writes: a
    JSON object naming one of the engines (`fmnist.engines`)."""
    try:
        info = json.loads((Path(run_dir) / RUN_INFO_FILE).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return info if isinstance(info, dict) and named_engine(info) in engines.names() else None


def named_engine(record: dict[str, Any]) -> str | None:
    """The engine a run's record names (run.json, test_metrics.json, evaluation.json, export.json):
    "engine", or "backend" in the files written before the project called it so."""
    name = record.get("engine", record.get("backend"))
    return name if isinstance(name, str) else None


def engine_named_by(run_dir: Path) -> str:
    """The engine a run's marker names, its model file there or not (an unfinished run's too)."""
    info = read_run_info(run_dir)
    if info is None:
        raise RunDirError(f"{run_dir} holds no run of fmnist (no valid {RUN_INFO_FILE}): is it a run directory?")
    return named_engine(info) or ""


def is_artifact(name: str, artifacts: Iterable[str]) -> bool:
    """`name` is one of `artifacts`, or a temp file `atomic_path` left beside one when killed."""
    artifacts = tuple(artifacts)
    if name in artifacts:
        return True
    return name.startswith(".") and ".tmp" in name and any(name.startswith(f".{a}.") for a in artifacts)


def is_run_artifact(name: str) -> bool:
    return name == _WRITE_PROBE or is_artifact(name, run_artifacts())


def remove_run_artifacts(run_dir: Path) -> list[str]:
    """Delete a run's own files and folders (`run_artifacts()`, and temp files left beside them);
    everything else in the folder stays. The marker goes last, so a half-done removal is still
    recognised as a run. Returns the names removed."""
    run_dir = Path(run_dir)
    names = sorted((c.name for c in run_dir.iterdir() if is_run_artifact(c.name)), key=lambda n: n == RUN_INFO_FILE)
    for name in names:
        child = run_dir / name
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink(missing_ok=True)
    return names


def write_run_info(run_dir: Path, info: dict[str, Any]) -> None:
    write_json(Path(run_dir) / RUN_INFO_FILE, info)


def set_run_status(run_dir: Path, status: str) -> None:
    """Update `run.json`'s status, keeping what else it records."""
    info = read_run_info(run_dir) or {}
    write_run_info(run_dir, {**info, "status": status})


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yields a temp path beside `path`; renamed onto it only if the block finishes."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are meant to be shared
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def labels_digest(labels: np.ndarray) -> str:
    """SHA-256 of test labels as uint8: what a predictions file keeps of the labels it was scored on."""
    return hashlib.sha256(np.ascontiguousarray(labels, dtype=np.uint8).tobytes()).hexdigest()


def write_predictions(path: Path, logits: np.ndarray, labels: np.ndarray) -> None:
    """The test logits and a digest of the labels they were scored on, not the labels: the labels
    are the dataset's (which is not ours to publish), so a run's result files may be committed,
    and a report reads the labels from the data again (`read_predictions`)."""
    with atomic_path(path) as tmp:
        with tmp.open("wb") as f:
            np.savez_compressed(f, logits=logits.astype(np.float32), labels_sha256=np.array(labels_digest(labels)))


def _open_predictions(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:  # arrays only: a results file runs no code
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError) as exc:  # an object array (a pickle), a damaged or foreign file
        raise RunDirError(f"{path} does not hold plain logits and labels ({exc}); refusing to read it") from None
    if "logits" not in arrays:
        raise RunDirError(f"{path} holds no logits: not a run's predictions")
    return arrays


def read_logits(path: Path) -> np.ndarray:
    """A run's test logits alone (no labels needed)."""
    return _open_predictions(path)["logits"]


def read_predictions(path: Path, test_labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The logits and their labels. A file written before the digest holds the labels itself; one
    with the digest takes the first N of `test_labels` (the official test set, in order), checked
    against it, so a report never pairs logits with other labels than they were scored on."""
    arrays = _open_predictions(path)
    logits = arrays["logits"]
    if "labels" in arrays:
        return logits, arrays["labels"]
    if "labels_sha256" not in arrays:
        raise RunDirError(f"{path} holds logits but neither labels nor their digest; refusing to read it")
    if test_labels is None:
        raise RunDirError(f"{path} keeps a digest of its labels, not the labels: the test set is needed to read it")
    labels = np.asarray(test_labels)[: len(logits)]
    if len(labels) != len(logits) or labels_digest(labels) != str(arrays["labels_sha256"]):
        raise RunDirError(
            f"{path} was scored on other test labels than the first {len(logits)} of the data given"
            " (another data set, or another order): point --data-dir at the data it was tested on"
        )
    return logits, labels


def settings_record(engine_name: str, config: dict[str, Any], data_sha256: Mapping[str, str]) -> dict[str, Any]:
    """The part of `run.json` a request is matched against (`compare.runner.differences`), from a
    config as a mapping: written once, so a run and a request to reuse it name the same keys."""
    return {
        "engine": engine_name,
        "seed": config["seed"],
        "precision": config["train"]["precision"],
        "config": config,
        "data_sha256": dict(data_sha256),
    }


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path} not found: is this a finished run directory?") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def metrics_row(
    epoch_index: int,
    *,
    train_loss: SupportsFloat,
    train_accuracy: SupportsFloat,
    val_loss: SupportsFloat,
    val_accuracy: SupportsFloat,
    lr: SupportsFloat,
    seconds: float,
) -> dict[str, float]:
    """One epoch's row of metrics.csv, in `METRICS_COLUMNS` order, from the framework's values
    (numbers, scalar arrays or tensors). `epoch_index` counts from 0, as the frameworks do; the
    row counts epochs from 1, as the log and the progress bars do."""
    row = {
        "epoch": epoch_index + 1,
        "train_loss": float(train_loss),
        "train_accuracy": float(train_accuracy),
        "val_loss": float(val_loss),
        "val_accuracy": float(val_accuracy),
        "lr": float(lr),
        "seconds": float(seconds),
    }
    return {column: row[column] for column in METRICS_COLUMNS}


class MetricsCSV:
    """Appends one row per epoch to metrics.csv, flushed to disk at once."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(METRICS_COLUMNS)

    def truncate(self, epochs: int) -> list[dict[str, float]]:
        """Keep the rows of the first `epochs` epochs (a resumed run redoes the rest); returns them."""
        rows = [r for r in read_metrics(self.path) if r["epoch"] <= epochs]
        with atomic_path(self.path) as tmp:
            with tmp.open("w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(METRICS_COLUMNS)
                writer.writerows([_fmt(r[c]) for c in METRICS_COLUMNS] for r in rows)
        return rows

    def append(self, row: dict[str, float]) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([_fmt(row[c]) for c in METRICS_COLUMNS])
            f.flush()
            os.fsync(f.fileno())


def _fmt(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))  # shortest text that round-trips, so reruns compare exactly


def read_metrics(path: Path) -> list[dict[str, float]]:
    with Path(path).open(newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def engine_of(run_dir: Path) -> str:
    """Which engine trained a run, as its `run.json` records (a model file does not say: every
    Keras engine saves model.keras); the model file must be there too."""
    info = read_run_info(run_dir)
    if info is None:
        raise RunDirError(f"{run_dir} holds no run of fmnist (no valid {RUN_INFO_FILE}): is it a run directory?")
    name = named_engine(info) or ""
    model = Path(run_dir) / engines.engine(name).model_file
    if not model.exists():
        raise RunDirError(f"{run_dir} holds no model ({model.name}): is it a finished run directory?")
    return name


def check_model_archive(path: Path, what: str) -> None:
    """Refuse, in one line, a model or checkpoint file that is there but is no zip archive (cut
    short by a crash or a full disk, say): both a `.keras` file and a torch checkpoint are zip
    archives, and the frameworks' own readers fail on such a file deep inside. `what` names the
    kind of file for the message; a missing file is left to the framework's own message."""
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        raise RunDirError(f"{path} is not a valid {what} (truncated or corrupted); train the run again")


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


class EpochTimer:
    """Seconds per epoch, measured the same way in every engine's callbacks."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.start = clock()

    def restart(self) -> None:
        self.start = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.start


def interrupted_message(run_dir: Path) -> str:
    """What is true of a run interrupted now, and what to do next: nothing written yet (the
    interrupt came before the run marker), no epoch finished (resume starts it over), or the epochs
    kept in its checkpoint (resume continues after them)."""
    run_dir = Path(run_dir)
    if read_run_info(run_dir) is None:
        return "interrupted before the run started: nothing was written; run the same command to start it"
    checkpoint = run_dir / CHECKPOINT_DIR
    finished = len(read_metrics(run_dir / METRICS_FILE)) if (run_dir / METRICS_FILE).is_file() else 0
    if not finished or not checkpoint.is_dir() or not any(checkpoint.iterdir()):
        return (
            f"interrupted before its first epoch finished: {run_dir} holds no epoch to keep."
            f"\nStart it over with: fmnist train --resume {run_dir}"
        )
    return (
        f"interrupted; the last finished epoch ({finished}) is saved in {checkpoint}."
        f"\nResume with: fmnist train --resume {run_dir}"
    )
