"""Engine-neutral orchestration of `fmnist train` and `fmnist evaluate`.

An engine (`fmnist.engines`) trains and predicts; everything a user compares across engines (data,
splits, batch order, metrics, files, plots, TensorBoard tags) is done here once. Engines are
loaded by name, so this module never imports a framework itself.
"""

from __future__ import annotations

import platform
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from fmnist import __version__, console, distributed, engines, precision, rundir
from fmnist.placement import placement
from fmnist.capabilities import Training
from fmnist.epoch_reporter import EpochReporter
from fmnist.cpu_features import cpu_model
from fmnist.config import Config, config_from_dict, config_to_dict, load_config, save_config
from fmnist.datasets import load_fashion_mnist
from fmnist.errors import RunDirError
from fmnist.metrics import test_metrics
from fmnist.plots import figure_png, plot_confusion, plot_curves, plot_prediction_grid, save_figure
from fmnist.splits import DataSplits, make_splits
from fmnist.tensorboard_log import TensorBoardLog
from fmnist.tta import flip_average_logits, flip_images


def load_training(name: str) -> Training:
    """The engine's training capability, its framework set up and imported on demand."""
    return engines.engine(name).capability("training")


def common_versions() -> dict[str, str]:
    return {"fmnist-parity": __version__, "python": platform.python_version(), "numpy": np.__version__}


def train_run(
    engine_name: str, config: Config, run_dir: Path, data_dir: str | None = None, overwrite: bool = False
) -> dict[str, Any] | None:
    """Train one engine on one config and write the complete run directory.

    Returns None in the extra processes of a multi-process training: they train, and the first
    process alone writes the run directory.
    """
    distributed.check_strategy(engine_name, config.train)
    if distributed.is_primary():
        rundir.check_run_dir(run_dir, overwrite=overwrite)  # before the framework's import: a refusal is quick
    engine = load_training(engine_name)
    asked = config.train.precision
    config = resolved_precision(engine, config)
    if not distributed.is_primary():
        return _train(engine_name, engine, config, run_dir, load_fashion_mnist(data_dir), resume=False, asked=asked)
    run_dir = rundir.prepare_run_dir(run_dir, overwrite=overwrite)
    data = load_fashion_mnist(data_dir)  # before any file is written: bad data leaves no half run
    # The marker first: a run that crashes from here on is still recognised as one (--overwrite,
    # compare's reuse), and it records what `fmnist compare` matches a request against.
    rundir.write_run_info(run_dir, run_record(engine_name, config, data, asked=asked))
    save_config(config, run_dir / rundir.CONFIG_FILE)  # as it trains: a resume elsewhere keeps its precision
    return _train(engine_name, engine, config, run_dir, data, resume=False, asked=asked)


def resolved_precision(engine: Training, config: Config) -> Config:
    """`config` with `train.precision: auto` resolved for the device the engine trains on
    (`fmnist.precision`); the first process says what it trains in, and why."""
    device = engine.training_device(config)
    resolved = precision.resolve_config(config, device)
    if distributed.is_primary():
        print(precision.describe(config.train.precision, resolved.train.precision, device), flush=True)
    return resolved


def run_record(
    engine_name: str, config: Config, data: Any, status: str = "training", asked: str | None = None
) -> dict[str, Any]:
    """What `run.json` records: the engine and status, and the settings a run was made with (the
    resolved config, seed, precision, the data files' SHA-256), which `fmnist compare` matches;
    beside them where and how it runs (`fmnist.placement`), which no request is matched against.
    `config` is the one it trains (its precision resolved); `asked` the precision its config
    asked for ("auto"; None: the same)."""
    return {
        **rundir.settings_record(engine_name, config_to_dict(config), data.sha256),
        "status": status,
        "precision_asked": asked or config.train.precision,
        "placement": placement(),
    }


def resume_run(run_dir: Path, data_dir: str | None = None) -> dict[str, Any] | None:
    """Continue an interrupted run from its last finished epoch, with its own config and engine."""
    run_dir = Path(run_dir)
    if not (run_dir / rundir.RUN_INFO_FILE).is_file():
        raise RunDirError(
            f"{run_dir} holds no run to resume (no {rundir.RUN_INFO_FILE}); start one with fmnist train --engine ..."
        )
    info = rundir.read_json(run_dir / rundir.RUN_INFO_FILE)
    if rundir.read_run_info(run_dir) is None:
        raise RunDirError(f"{run_dir / rundir.RUN_INFO_FILE} names no engine of fmnist; it is not a run to resume")
    if (run_dir / rundir.TEST_METRICS_FILE).exists() and distributed.is_primary():
        raise RunDirError(f"{run_dir} holds a finished run (test_metrics.json); nothing to resume")
    if (
        not (run_dir / rundir.CONFIG_FILE).exists()
        and isinstance(info.get("config"), dict)
        and distributed.is_primary()
    ):
        # Stopped between its marker and config.yaml: the marker records the config too.
        save_config(config_from_dict(info["config"]), run_dir / rundir.CONFIG_FILE)
    config = load_config(run_dir / rundir.CONFIG_FILE)
    engine_name = rundir.named_engine(info) or ""
    distributed.check_strategy(engine_name, config.train)
    data = load_fashion_mnist(data_dir)
    check_same_data(run_dir, info, data.sha256)  # before the framework's import: a refusal is quick
    engine = load_training(engine_name)
    config = resolved_precision(engine, config)  # config.yaml holds what the run began in: kept
    if distributed.is_primary():
        rundir.write_run_info(run_dir, {**info, "placement": placement()})  # where this attempt runs
    asked = precision.asked_of(info) or config.train.precision
    return _train(engine_name, engine, config, run_dir, data, resume=True, asked=asked)


def check_same_data(run_dir: Path, info: dict[str, Any], sha256: dict[str, str]) -> None:
    """Refuse to continue a run on other data than it started on: its first epochs and the rest
    would have seen different images. A run from before data checksums were recorded is refused
    too, since nothing says what it saw."""
    recorded = info.get("data_sha256")
    if not isinstance(recorded, dict) or not recorded:
        raise RunDirError(
            f"{run_dir / rundir.RUN_INFO_FILE} records no data checksums, so nothing says which data the"
            " run started on; train it again instead of resuming"
        )
    for stem in sorted(set(recorded) | set(sha256)):
        if recorded.get(stem) != sha256.get(stem):
            raise RunDirError(
                f"{run_dir} started on other data than is found now: {stem} SHA-256"
                f" {str(recorded.get(stem))[:12]}... in the run, {str(sha256.get(stem))[:12]}... now;"
                " point --data-dir (or FMNIST_DATA_DIR) at the data it started on, or train it again"
            )


def _train(
    engine_name: str, engine: Training, config: Config, run_dir: Path, data: Any, resume: bool, asked: str
) -> dict[str, Any] | None:
    if not distributed.is_primary():  # a process launched by the first one: train, write nothing
        engine.train(config, make_splits(data, config), run_dir, None, resume=resume)
        return None
    if config.train.devices * config.train.num_nodes > 1:
        distributed.share_run_dir(run_dir)
    splits = make_splits(data, config)
    tensorboard = TensorBoardLog(run_dir / rundir.TENSORBOARD_DIR)
    # Off a terminal the core prints one line per epoch; on one, the framework's live bar runs.
    reporter = EpochReporter(run_dir, tensorboard, config.train.epochs, echo=not console.live())
    if resume:
        done = engine.completed_epochs(run_dir)
        reporter.resume_from(done)
        print(f"resuming {run_dir} after epoch {done} of {config.train.epochs}", flush=True)
    earlier_seconds = sum(row["seconds"] for row in reporter.rows)  # epochs trained before a resume
    try:
        outcome = engine.train(config, splits, run_dir, reporter, resume=resume)
    finally:
        tensorboard.close()
    outcome.train_seconds += earlier_seconds
    metrics = test_metrics(outcome.test_logits, splits.test.labels)
    # Early stopping may end a run before config.train.epochs; otherwise one row per epoch.
    epochs_trained = len(reporter.rows) or config.train.epochs
    images_trained = len(splits.train) * epochs_trained
    result = {
        "engine": engine_name,
        "config": config.name,
        "seed": config.seed,
        "precision": config.train.precision,  # what it trained in; precision_asked: what its config said
        "precision_asked": asked,
        "epochs": config.train.epochs,
        "num_params": outcome.num_params,
        **metrics,
        "train_seconds": outcome.train_seconds,
        "cpu_seconds": reporter.cpu_seconds,  # user + system, summed over resumed attempts
        "cpu_model": cpu_model(),  # of the last attempt: timings and bf16 speed depend on it
        "train_images_per_second": images_trained / outcome.train_seconds,
        "train_images": len(splits.train),
        "val_images": len(splits.val),
        "final_val_accuracy": reporter.rows[-1]["val_accuracy"] if reporter.rows else None,
        "epochs_trained": epochs_trained,
        **restored_epoch(config, reporter.rows),
        "resumed": resume,
        "devices": config.train.devices * config.train.num_nodes,
        "framework_threads": outcome.threads,  # as the framework reports them (placement: as asked)
        "versions": {**common_versions(), **outcome.versions},
    }
    rundir.write_predictions(run_dir / rundir.PREDICTIONS_FILE, outcome.test_logits, splits.test.labels)
    rundir.atomic_write_text(run_dir / rundir.SUMMARY_FILE, outcome.summary)
    write_figures(run_dir, engine_name, config, reporter.rows, metrics, splits, outcome.test_logits)
    rundir.write_json(run_dir / rundir.TEST_METRICS_FILE, result)  # last: its presence means "finished"
    rundir.set_run_status(run_dir, "finished")
    shutil.rmtree(run_dir / rundir.CHECKPOINT_DIR, ignore_errors=True)  # model.* holds the result now
    return result


def restored_epoch(config: Config, rows: list[dict[str, float]]) -> dict[str, Any]:
    """With early stopping, the epoch whose weights the model holds: the first with the highest
    validation accuracy (every engine restores it: a later equal value is no improvement)."""
    if not config.train.early_stopping or not rows:
        return {}
    best = max(range(len(rows)), key=lambda i: (rows[i]["val_accuracy"], -i))
    return {"restored_epoch": best + 1, "restored_val_accuracy": rows[best]["val_accuracy"]}


def write_figures(
    run_dir: Path,
    engine: str,
    config: Config,
    rows: list[dict[str, float]],
    metrics: dict[str, Any],
    splits: DataSplits,
    logits: np.ndarray,
) -> None:
    """curves.png and confusion_matrix.png in the run dir; the matrix and a prediction grid in TensorBoard."""
    title = f"{config.name} / {engine} / seed {config.seed}"
    if rows:
        save_figure(plot_curves(rows, title), run_dir / rundir.CURVES_FILE)
    fig = plot_confusion(
        np.array(metrics["confusion_matrix"]), f"{title}: test accuracy {metrics['test_accuracy']:.2%}"
    )
    png, width, height = figure_png(fig)
    rundir.atomic_write_bytes(run_dir / rundir.CONFUSION_FILE, png)
    tensorboard = TensorBoardLog(run_dir / rundir.TENSORBOARD_DIR)
    tensorboard.image("test", "confusion_matrix", png, width, height)
    grid = plot_prediction_grid(
        splits.test.images, splits.test.labels, logits.argmax(axis=1), f"{title}: first test images, predicted (true)"
    )
    tensorboard.image("test", "predictions", *figure_png(grid))
    tensorboard.close()


def evaluate_run(
    run_dir: Path, data_dir: str | None = None, tta: bool = False, engine: str | None = None
) -> dict[str, Any]:
    """Re-load a run's saved model and measure it on the test set it was tested on; with `tta`,
    also with flip test-time augmentation, under its own key (plain accuracy stays as it was).
    engine: load it in this engine instead of its own (one of the same model format)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is not a directory")
    trained_by = rundir.engine_of(run_dir)
    engine_name = engine or trained_by
    if engines.engine(engine_name).model_format != engines.engine(trained_by).model_format:
        same = [e.name for e in engines.all_engines() if e.model_format == engines.engine(trained_by).model_format]
        raise RunDirError(
            f"{run_dir} was trained by {trained_by}; {engine_name} cannot load its"
            f" {engines.engine(trained_by).model_file}: choose an engine that reads it ({', '.join(same)})"
        )
    config = load_config(run_dir / rundir.CONFIG_FILE)
    engine = load_training(engine_name)
    splits = make_splits(load_fashion_mnist(data_dir), config)
    start = time.perf_counter()
    images, n = splits.test.images, len(splits.test.images)
    if tta:  # the mirror images in the same pass: the model is loaded once
        images = np.concatenate([images, flip_images(images)])
    logits = engine.predict(run_dir, images, config.train.eval_batch_size)
    metrics = test_metrics(logits[:n], splits.test.labels)
    result = {
        "engine": engine_name,
        "trained_by": trained_by,
        "run_dir": str(run_dir),
        **metrics,
        "seconds": time.perf_counter() - start,
    }
    if tta:
        result["flip_tta"] = test_metrics(flip_average_logits(logits[:n], logits[n:]), splits.test.labels)
    rundir.write_json(run_dir / rundir.EVALUATION_FILE, result)
    return result


def format_summary(result: dict[str, Any]) -> str:
    """The one line a user reads at the end of a run."""
    parts = [
        f"{result['engine']}",
        f"test accuracy {result['test_accuracy']:.2%}",
        f"test loss {result['test_loss']:.4f}",
        f"on {result['test_images']:,} images",
    ]
    if "train_seconds" in result:
        on = f" on {result['devices']} devices" if result.get("devices", 1) > 1 else ""
        parts.append(
            f"{result['epochs']} epochs in {result['train_seconds']:.1f} s{on}"
            f" ({result['train_images_per_second']:,.0f} images/s)"
        )
    worst = min(result["per_class"].items(), key=lambda kv: kv[1]["f1"])
    parts.append(f"hardest class {worst[0]} (F1 {worst[1]['f1']:.2f})")
    return " | ".join(parts)
