"""An exported model run in onnxruntime: no TensorFlow, no torch, no pickle.

Every engine exports to one contract (see `fmnist export`), so this one class runs either:
input `pixels`, float32 [N, 28, 28, 1], raw 0-255 values (the normalisation is inside the
model); output `logits`, float32 [N, 10]; class names, config and test accuracy in the model's
metadata. An ONNX file is a protobuf of operators and tensors: loading it runs no code of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fmnist import CLASS_NAMES, IMAGE_SHAPE
from fmnist.errors import FmnistError, reason as error_reason

INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"
BATCH_DIM = "batch"
# Metadata keys (ONNX metadata_props, all strings).
META_CLASS_NAMES = "class_names"  # JSON list
META_CONFIG = "config"  # the run's config.yaml
META_TEST_ACCURACY = "test_accuracy"  # the run's, from test_metrics.json
META_ENGINE = "engine"
META_CONTRACT = "input_contract"
CONTRACT = (
    "pixels: float32 [N, 28, 28, 1], raw 0-255 grey values, dark background (Fashion-MNIST style);"
    " logits: float32 [N, 10]; normalisation is inside the model"
)
BATCH_SIZE = 256  # images per onnxruntime call


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ModuleNotFoundError:
        raise FmnistError("running an .onnx file needs onnxruntime: pip install 'fmnist-parity[export]'") from None
    return onnxruntime


class OnnxModel:
    """An exported model, checked against the contract when opened."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        ort = _onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise FmnistError(f"{self.path}: no such ONNX file")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its notices are not the user's business
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise FmnistError(f"{self.path} is not a usable ONNX model: {error_reason(exc)}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = [d if isinstance(d, int) else None for d in (inputs[0].shape if inputs else [])]
        if (
            [i.name for i in inputs] != [INPUT_NAME]
            or [o.name for o in outputs] != [OUTPUT_NAME]
            or shape[1:] != [*IMAGE_SHAPE, 1]
        ):
            found = f"{[i.name for i in inputs]} -> {[o.name for o in outputs]}"
            raise FmnistError(
                f"{self.path} is not an fmnist export (want input '{INPUT_NAME}' [N, 28, 28, 1] and"
                f" output '{OUTPUT_NAME}'; it has {found})"
            )
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        names = json.loads(self.metadata.get(META_CLASS_NAMES, "null")) or list(CLASS_NAMES)
        self.class_names: tuple[str, ...] = tuple(names)

    def logits(self, images: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """uint8 or float [N, 28, 28] (or [N, 28, 28, 1]) raw pixels -> float32 [N, 10] logits."""
        x = np.asarray(images, dtype=np.float32).reshape(-1, *IMAGE_SHAPE, 1)
        if len(x) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        return np.concatenate(
            [
                self.session.run([OUTPUT_NAME], {INPUT_NAME: x[i : i + batch_size]})[0]
                for i in range(0, len(x), batch_size)
            ]
        )
