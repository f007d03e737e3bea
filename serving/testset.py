"""The Fashion-MNIST test set behind the page's "random test image" and the live disagreement
view. Read from the project's data folder without downloading: a server without the data still
serves everything else, and says in one line why those two features are off."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fmnist import CLASS_NAMES
from fmnist.datasets import load_test_split, resolve_data_dir
from fmnist.errors import FmnistError
from fmnist.metrics import softmax
from serving.models import ServedModel


@dataclass
class FashionTestSet:
    images: np.ndarray  # uint8 [10000, 28, 28]
    labels: np.ndarray
    _disagreements: dict[str, Any] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    def item(self, index: int) -> dict[str, Any]:
        label = int(self.labels[index])
        return {"index": index, "label": label, "class": CLASS_NAMES[label]}

    def disagreements(self, models: list[ServedModel]) -> dict[str, Any]:
        """Every model on every test image, once (about a second), then kept: the images where
        the loaded models do not all give the same class, and each model's accuracy."""
        with self._lock:
            if self._disagreements is None:
                self._disagreements = _disagreements(self, models)
            return self._disagreements


def _disagreements(test: FashionTestSet, models: list[ServedModel]) -> dict[str, Any]:
    probabilities = np.stack([softmax(m.logits(test.images)) for m in models], axis=1)  # [N, models, classes]
    classes = probabilities.argmax(axis=2)
    differ = np.flatnonzero((classes != classes[:, :1]).any(axis=1))
    rows = []
    for i in differ:
        row = test.item(int(i))
        row["predictions"] = [
            {
                "model": m.name,
                "class": m.class_names[classes[i, j]],
                "probability": round(float(probabilities[i, j, classes[i, j]]), 6),
                "correct": bool(classes[i, j] == row["label"]),
            }
            for j, m in enumerate(models)
        ]
        rows.append(row)
    return {
        "images": len(test),
        "same_class": int(len(test) - len(differ)),
        "accuracy": {m.name: float((classes[:, j] == test.labels).mean()) for j, m in enumerate(models)},
        "disagreements": rows,
    }


def load_test_set(data_dir: str | None) -> tuple[FashionTestSet | None, str | None]:
    """The test set, or None and the one-line note the page shows instead."""
    folder, source = resolve_data_dir(data_dir)
    try:
        images, labels = load_test_split(data_dir)
    except (FmnistError, OSError):
        return None, (
            f"No Fashion-MNIST test data in {folder} (from {source}): random test images and the"
            f" disagreement view are off; start the server with --data-dir or FMNIST_DATA_DIR to turn them on."
        )
    return FashionTestSet(images, labels), None
