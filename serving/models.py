"""The models a server runs: exported .onnx files, or run directories exported first in a child
process (`fmnist.job`, kind "export"), so the serving process never loads TensorFlow or torch.

Each model is one onnxruntime session, opened once at start-up (`fmnist.onnx_model.OnnxModel`
checks the input/output contract) and shared by all requests: onnxruntime sessions are safe to
run from several threads at once.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fmnist import job, launch, rundir
from fmnist.errors import ERROR_PREFIX, FmnistError
from fmnist.message import write_message
from fmnist.metrics import softmax
from fmnist.onnx_model import META_ENGINE, META_CONFIG, META_TEST_ACCURACY, OnnxModel

EXPORT_FILE = rundir.ONNX_FILE  # `fmnist export`'s default output in a run directory
EXPORT_TIMEOUT_S = 1800  # the export checks all 10,000 test images in the framework: minutes at most
#: Threads per onnxruntime session: one image per request is far too small to split, and
#: concurrent requests already use every core.
DEFAULT_THREADS = 1
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})=(.+)$")


@dataclass
class ServedModel:
    """One loaded model and what GET /v1/models says about it."""

    name: str
    path: Path
    runner: OnnxModel
    engine: str
    run: str
    config: dict[str, Any] | None
    parameters: int | None
    test_accuracy: float | None
    class_names: tuple[str, ...] = field(default=())

    def logits(self, images: np.ndarray) -> np.ndarray:
        return self.runner.logits(images)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "engine": self.engine,
            "run": self.run,
            "file": self.path.name,
            "parameters": self.parameters,
            "test_accuracy": self.test_accuracy,
            "class_names": list(self.class_names),
            "config": self.config,
        }


def split_spec(spec: str) -> tuple[str | None, Path]:
    """`NAME=PATH` names a model; a bare PATH is named after its engine (or its run if two share one)."""
    match = _NAME.match(spec)
    if match and not Path(spec).exists():
        return match.group(1), Path(match.group(2))
    return None, Path(spec)


def resolve(path: Path, data_dir: str | None = None, log: Callable[[str], None] = print) -> Path:
    """The .onnx file to serve for `path`: the file itself, or a run directory's export, made in a
    child process when it is missing or older than the run's final results."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FmnistError(f"{path}: no such .onnx file or run directory")
    export = path / EXPORT_FILE
    finished = path / rundir.TEST_METRICS_FILE
    if export.is_file() and (not finished.is_file() or export.stat().st_mtime >= finished.stat().st_mtime):
        return export
    if not finished.is_file():
        raise FmnistError(f"{path}: not a finished run directory (no {rundir.TEST_METRICS_FILE}) and no {EXPORT_FILE}")
    log(f"exporting {path} to ONNX in a child process (as fmnist export; the server itself loads no framework)...")
    export_in_child(path, data_dir)
    return export


def export_in_child(run_dir: Path, data_dir: str | None = None) -> None:
    """The export job (`fmnist.job`, kind "export": what `fmnist export RUN_DIR` does) in a fresh
    Python process; its last line is the error if it fails."""
    with tempfile.TemporaryDirectory(prefix="fmnist-export-") as folder:
        request, log = Path(folder) / job.REQUEST_FILE, Path(folder) / "export.log"
        write_message(request, job.request("export", run_dir=str(run_dir), data_dir=data_dir))
        code = launch.run(job.command(request, folder), dict(os.environ), log, timeout=EXPORT_TIMEOUT_S)
        output = log.read_text(errors="replace")
    if code is None:
        raise FmnistError(
            f"{run_dir}: exporting took over {EXPORT_TIMEOUT_S} s; run `fmnist export {run_dir}` yourself"
        )
    if code != 0:
        last = (output.strip() or "no output").splitlines()[-1].removeprefix(ERROR_PREFIX)
        raise FmnistError(f"{run_dir}: exporting it for serving failed: {last}")


def _parameters(config: dict[str, Any] | None) -> int | None:
    if config is None:
        return None
    from fmnist.architecture import count_params
    from fmnist.config import config_from_dict

    try:
        return count_params(config_from_dict(config))
    except (FmnistError, TypeError, ValueError):
        return None


def open_model(path: Path, name: str | None = None, threads: int = DEFAULT_THREADS) -> ServedModel:
    runner = OnnxModel(path, threads=threads)
    meta = runner.metadata
    try:
        config = yaml.safe_load(meta.get(META_CONFIG, "")) or None
    except yaml.YAMLError:
        config = None
    try:
        accuracy: float | None = float(meta.get(META_TEST_ACCURACY, ""))
    except ValueError:
        accuracy = None
    run = meta.get("run") or (path.parent.name if path.name == EXPORT_FILE else path.stem)
    return ServedModel(
        name or "",
        Path(path),
        runner,
        meta.get(META_ENGINE) or meta.get("backend", "unknown"),  # "backend" in files exported before
        run,
        config if isinstance(config, dict) else None,
        _parameters(config if isinstance(config, dict) else None),
        accuracy,
        runner.class_names,
    )


def load_models(
    specs: list[str], data_dir: str | None = None, threads: int = DEFAULT_THREADS, log: Callable[[str], None] = print
) -> list[ServedModel]:
    """Open every model (exporting run directories first) and give each a unique name."""
    if not specs:
        raise FmnistError("name at least one model: an exported .onnx file or a run directory")
    opened = []
    for spec in specs:
        name, path = split_spec(spec)
        opened.append(open_model(resolve(path, data_dir, log), name, threads))
    classes = {m.class_names for m in opened}
    if len(classes) > 1:
        raise FmnistError("the models have different class names; they cannot be compared side by side")
    _name(opened)
    return opened


def _name(models: list[ServedModel]) -> None:
    """Unnamed models take their engine's name; where two share it, their run's; then -2, -3..."""
    engines = [m.engine for m in models if not m.name]
    for m in models:
        if not m.name:
            m.name = m.engine if engines.count(m.engine) == 1 else m.run
    seen: dict[str, int] = {}
    for m in models:
        seen[m.name] = seen.get(m.name, 0) + 1
        if seen[m.name] > 1:
            m.name = f"{m.name}-{seen[m.name]}"


def top_k(probabilities: np.ndarray, class_names: tuple[str, ...], k: int) -> list[dict[str, Any]]:
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [{"class": class_names[i], "index": int(i), "probability": round(float(probabilities[i]), 6)} for i in order]


def predict(models: list[ServedModel], pixels: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
    """For each image, each model's answer: class, probability, top-k. One onnxruntime call per model."""
    per_model = [softmax(np.asarray(m.logits(pixels), np.float64)) for m in models]
    out = []
    for i in range(len(pixels)):
        answers = []
        for m, probs in zip(models, per_model):
            ranked = top_k(probs[i], m.class_names, k)
            answers.append(
                {"model": m.name, "class": ranked[0]["class"], "probability": ranked[0]["probability"], "top_k": ranked}
            )
        out.append(answers)
    return out
