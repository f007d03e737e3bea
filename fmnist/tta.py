"""Test-time augmentation by horizontal flip, for any engine that can predict logits.

Fashion-MNIST items are roughly left-right symmetric (the training augmentation flips them too),
so a model's view of the mirrored image is a second opinion. The two softmax outputs are averaged
and returned as log-probabilities: valid logits for the same accuracy and loss code. Reported
apart from plain accuracy, which stays the one the parity comparison uses.
"""

from __future__ import annotations

import numpy as np

from fmnist.metrics import softmax


def flip_images(images: np.ndarray) -> np.ndarray:
    """Mirror N x H x W images left-right (a view)."""
    return images[:, :, ::-1]


def flip_average_logits(logits: np.ndarray, mirrored_logits: np.ndarray) -> np.ndarray:
    """log(mean(softmax(f(x)), softmax(f(flip(x))))): the flip-averaged prediction as logits."""
    probs = (softmax(logits) + softmax(mirrored_logits)) / 2
    return np.log(np.maximum(probs, np.finfo(np.float64).tiny))
