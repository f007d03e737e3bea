"""Test-set metrics computed in numpy from a model's logits, identically for every engine."""

from __future__ import annotations

from typing import Any

import numpy as np

from fmnist import CLASS_NAMES, NUM_CLASSES


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean softmax cross-entropy, in float64 so every engine's figures compare to the last digit."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, k: int = NUM_CLASSES) -> np.ndarray:
    """Counts: row = true class, column = predicted class."""
    return np.bincount(labels.astype(np.int64) * k + predictions, minlength=k * k).reshape(k, k)


def per_class_scores(cm: np.ndarray) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class; 0 where a denominator is 0."""
    tp = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(CLASS_NAMES, precision, recall, f1, actual)
    }


def test_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy, loss, confusion matrix and per-class scores of one pass over the test set."""
    if len(logits) != len(labels):
        raise ValueError(f"{len(logits)} predictions for {len(labels)} test images: every image must be seen once")
    predictions = logits.argmax(axis=1)
    cm = confusion_matrix(labels, predictions)
    scores = per_class_scores(cm)
    return {
        "test_accuracy": float((predictions == labels).mean()),
        "test_loss": cross_entropy(logits, labels),
        "test_images": int(len(labels)),
        "macro_f1": float(np.mean([s["f1"] for s in scores.values()])),
        "confusion_matrix": cm.tolist(),
        "per_class": scores,
    }
