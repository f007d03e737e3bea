"""A finished run directory read from Python: what `fmnist train` wrote (its config, metrics per
epoch, test metrics, engine and model file), for a notebook, a script, or the compare report
(which reads its runs here, the predictions beside). The result files alone are enough
(`rundir.RESULT_FILES`, as committed under docs/results/). The model itself is loaded by its
framework (`keras.saving.load_model`, `FashionClassifier.load_from_checkpoint`), or used
through its engine (`FinishedRun.predict`); this module imports none."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fmnist import engines, rundir
from fmnist.config import Config, load_config, with_overrides
from fmnist.errors import RunDirError
from fmnist.precision import RESOLVED


@dataclass(frozen=True)
class FinishedRun:
    path: Path
    engine: str  # the engine that trained it (`fmnist.engines`)
    config: Config  # as it trained (`trained_config`: its precision resolved)
    history: list[dict[str, float]]  # metrics.csv: one row per epoch, `rundir.METRICS_COLUMNS`
    test: dict[str, Any]  # test_metrics.json: accuracy, loss, times, versions, ...

    @property
    def model_file(self) -> Path:
        """The saved model, in the engine's format (model.keras, model.ckpt, ...)."""
        return self.path / engines.engine(self.engine).model_file

    def predict(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Logits (N x 10) of raw images (uint8 N x 28 x 28), from the engine that trained the run,
        its framework imported now (`fmnist predict`'s path)."""
        from fmnist.training import load_training

        size = batch_size or self.config.train.eval_batch_size
        return load_training(self.engine).predict(self.path, np.asarray(images), size)


def open_run(path: str | Path) -> FinishedRun:
    """The finished run in `path`; a folder that holds none, or a run that has not finished, is a
    one-line `RunDirError`."""
    path = Path(path)
    if not (path / rundir.TEST_METRICS_FILE).is_file():
        if rundir.read_run_info(path) is None:
            raise RunDirError(
                f"{path} holds no run of fmnist (no valid {rundir.RUN_INFO_FILE}): is it a run directory?"
            )
        raise RunDirError(f"{path} holds a run that has not finished (no {rundir.TEST_METRICS_FILE})")
    for name in (rundir.CONFIG_FILE, rundir.METRICS_FILE):
        if not (path / name).is_file():
            raise RunDirError(f"{path / name} not found: is {path} a finished run directory?")
    test = rundir.read_json(path / rundir.TEST_METRICS_FILE)
    engine = rundir.named_engine(test) or rundir.named_engine(rundir.read_run_info(path) or {})
    if not engine:
        raise RunDirError(f"{path / rundir.TEST_METRICS_FILE} names no engine: is {path} a run directory of fmnist?")
    return FinishedRun(
        path=path,
        engine=engine,
        config=trained_config(path, test),
        history=rundir.read_metrics(path / rundir.METRICS_FILE),
        test=test,
    )


def trained_config(path: Path, test: dict[str, Any]) -> Config:
    """The run's config as it trained: config.yaml holds the precision it trained in, and so does
    test_metrics.json (`precision`, where recorded), which wins: runs are compared by what ran."""
    config = load_config(path / rundir.CONFIG_FILE)
    ran = test.get("precision")
    if ran in RESOLVED and ran != config.train.precision:
        config = with_overrides(config, {"train.precision": ran})
    return config
