"""`fmnist predict`: a trained model (a run directory of any engine, or an exported .onnx
file) on a user's own pictures.

Each picture is read and converted on its own (`fmnist.pictures`); a bad one is reported in one
line and the others are still predicted. The model is loaded once, through the engine's own
loader (`load_model` / `load_module`: `.keras` in safe mode, checkpoints as weights only) or
onnxruntime, and runs on all good pictures in one call. This module imports no framework.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fmnist import CLASS_NAMES
from fmnist import engines, pictures as pics, rundir
from fmnist.errors import FmnistError
from fmnist.metrics import softmax

DEFAULT_TOP_K = 3
ONNX_SUFFIX = ".onnx"


@dataclass
class Prediction:
    file: Path
    class_name: str
    probability: float
    top_k: list[tuple[str, float]]
    conversion: str
    logits: np.ndarray
    pixels: np.ndarray  # the 28x28 image the network saw

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "class": self.class_name,
            "probability": round(self.probability, 6),
            "top_k": [{"class": c, "probability": round(p, 6)} for c, p in self.top_k],
            "input": self.conversion,
        }


@dataclass
class PredictResult:
    model: str
    predictions: list[Prediction] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # open, decode, convert, model (load + inference)


@dataclass
class Classifier:
    """Logits for raw 28x28 images, whatever the model is stored as."""

    describe: str
    class_names: tuple[str, ...]
    logits: Callable[[np.ndarray], np.ndarray]


def open_classifier(model: Path) -> Classifier:
    """A run directory (Keras or Lightning) or an exported .onnx file. Checked here, before any
    picture is read: a run directory without a model fails at once."""
    model = Path(model)
    if model.is_file() and model.name in engines.model_files():  # a run's model file: its run
        model = model.parent
    if model.suffix.lower() == ONNX_SUFFIX or model.is_file():
        from fmnist.onnx_model import OnnxModel

        onnx = OnnxModel(model)
        return Classifier(f"{model} (onnxruntime)", onnx.class_names, onnx.logits)
    if not model.is_dir():
        raise FmnistError(f"{model}: no such run directory or .onnx file")
    from fmnist.config import load_config
    from fmnist.engines import clash
    from fmnist.training import load_training

    engine_name = rundir.engine_of(model)  # RunDirError: a run directory without a model
    config = load_config(model / rundir.CONFIG_FILE)

    def logits(images: np.ndarray) -> np.ndarray:
        batch = config.train.eval_batch_size
        if clash(engine_name) is None:
            return load_training(engine_name).predict(model, images, batch)
        # Another framework here already (a Keras run's model, say, then a Lightning run's): this
        # engine predicts in a process of its own (fmnist.engine_job).
        from fmnist.engine_job import call, run_jobs

        job = [call("predict", run_dir=str(model), images=images, batch_size=batch)]
        return np.asarray(run_jobs([(engine_name, job)])[0]["results"][0])

    return Classifier(f"{model} ({engine_name})", CLASS_NAMES, logits)


def predict_files(
    model: Path, inputs: list[Path], top_k: int = DEFAULT_TOP_K, show_input: Path | None = None
) -> PredictResult:
    """Predict every picture in `inputs` (files and folders); failures are collected, not raised."""
    start = time.perf_counter()
    classifier = open_classifier(model)
    opened = time.perf_counter() - start
    files, failures = pics.collect([Path(p) for p in inputs])
    result = PredictResult(
        classifier.describe, failures=failures, seconds={"open": opened, "decode": 0.0, "convert": 0.0, "model": 0.0}
    )
    good: list[pics.Picture] = []
    for path in files:
        try:
            picture = pics.load(path)
        except pics.PictureError as exc:
            result.failures.append((path, str(exc)))
            continue
        good.append(picture)
        for phase, seconds in picture.seconds.items():
            result.seconds[phase] += seconds
    if not good:
        return result
    start = time.perf_counter()
    with _quiet_framework():
        logits = np.asarray(classifier.logits(np.stack([p.pixels for p in good])), dtype=np.float32)
    result.seconds["model"] = time.perf_counter() - start
    probabilities = softmax(logits)
    k = max(1, min(top_k, len(classifier.class_names)))
    for picture, row, probs in zip(good, logits, probabilities):
        order = np.argsort(-probs, kind="stable")[:k]
        ranked = [(classifier.class_names[i], float(probs[i])) for i in order]
        result.predictions.append(
            Prediction(picture.path, ranked[0][0], ranked[0][1], ranked, picture.conversion, row, picture.pixels)
        )
    if show_input is not None:
        write_inputs(good, Path(show_input))
    return result


@contextlib.contextmanager
def _quiet_framework() -> Iterator[None]:
    """stdout is for the predictions (`--json` is read by scripts): what a framework prints there
    while predicting (Lightning's progress bar of one batch) is dropped, and Lightning's notices
    about accelerators are held back (a filter, not a level: Lightning sets its logger's level when
    it is imported, which may happen inside). Warnings and errors still reach stderr."""
    notices = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    warnings_only = _WarningsOnly()
    notices.addFilter(warnings_only)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            yield
    finally:
        notices.removeFilter(warnings_only)


class _WarningsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def write_inputs(good: list[pics.Picture], folder: Path) -> None:
    """Each 28x28 input as <name>.png (a number added when two pictures share a name)."""
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for picture in good:
        name, n = f"{picture.path.stem}.png", 1
        while name in used:
            n += 1
            name = f"{picture.path.stem}-{n}.png"
        used.add(name)
        pics.save_input(picture.pixels, folder / name)


def json_lines(result: PredictResult) -> list[str]:
    """One JSON object per picture, in input order of the good ones, then one per failure."""
    lines = [json.dumps(p.to_dict()) for p in result.predictions]
    lines += [json.dumps({"file": str(path), "error": reason}) for path, reason in result.failures]
    return lines


def table(result: PredictResult) -> Any:
    """A rich table: file, class, probability, the top-k."""
    from rich.table import Table

    out = Table(title=f"predictions of {result.model}", title_justify="left")
    out.add_column("file", overflow="fold")
    out.add_column("class")
    out.add_column("probability", justify="right")
    out.add_column("top-k")
    out.add_column("input")
    for p in result.predictions:
        out.add_row(
            str(p.file),
            p.class_name,
            f"{p.probability:.1%}",
            ", ".join(f"{c} {q:.1%}" for c, q in p.top_k),
            p.conversion,
        )
    return out
