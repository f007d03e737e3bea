"""Flip test-time augmentation: the mirror is the mirror, and the two softmax outputs are averaged."""

import numpy as np
import pytest

from fmnist.metrics import softmax
from fmnist.tta import flip_average_logits, flip_images


def _images(n: int = 6) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def test_flip_mirrors_each_row_and_twice_is_identity():
    x = _images()
    flipped = flip_images(x)
    assert flipped.shape == x.shape and flipped.dtype == x.dtype
    assert np.array_equal(flipped[:, :, 0], x[:, :, -1]) and np.array_equal(flipped[:, 3, :], x[:, 3, ::-1])
    assert np.array_equal(flip_images(flipped), x)


def test_a_flip_invariant_model_is_unchanged():
    weights = np.random.default_rng(1).normal(size=(28, 10))

    def predict(x):  # sums each row: the same for the mirror image
        return x.astype(np.float64).sum(axis=2) @ weights / 1e4

    x = _images()
    assert np.allclose(softmax(flip_average_logits(predict(x), predict(flip_images(x)))), softmax(predict(x)))


def test_the_prediction_is_the_mean_of_both_views():
    def predict(x):  # class 0 if the left half is brighter, class 1 otherwise, confidently
        left = x[:, :, :14].astype(np.float64).sum(axis=(1, 2))
        right = x[:, :, 14:].astype(np.float64).sum(axis=(1, 2))
        logits = np.full((len(x), 10), -30.0)
        logits[np.arange(len(x)), (right > left).astype(int)] = 30.0
        return logits

    x = np.zeros((2, 28, 28), np.uint8)
    x[:, :, :5] = 200  # bright on the left: one view says 0, the mirror says 1
    probs = softmax(flip_average_logits(predict(x), predict(flip_images(x))))
    assert probs[:, 0] == pytest.approx([0.5, 0.5]) and probs[:, 1] == pytest.approx([0.5, 0.5])
