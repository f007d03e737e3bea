"""Train/validation split and per-epoch batch order, computed once in numpy for every engine.

Parity needs both frameworks to see the very same images in the very same batches: nothing here
depends on a framework's random generator. Images stay uint8 (raw pixels); each model normalises
inside, so a saved model takes raw images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fmnist.config import Config

if TYPE_CHECKING:
    from fmnist.datasets import FashionMNIST


@dataclass(frozen=True)
class Split:
    """One split's raw images (uint8, N x 28 x 28) and labels (uint8, N)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class DataSplits:
    train: Split
    val: Split
    test: Split


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val), each sorted, with every class in val in proportion to its size.

    Per-class counts use largest remainders so the validation size is exactly
    round(val_fraction * N) and each class is within one image of its share.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    n_val = int(round(val_fraction * len(labels)))
    exact = counts * n_val / len(labels)
    per_class = np.floor(exact).astype(int)
    remainder_order = np.argsort(-(exact - per_class), kind="stable")
    per_class[remainder_order[: n_val - per_class.sum()]] += 1
    val = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, per_class)])
    is_val = np.zeros(len(labels), dtype=bool)
    is_val[val] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def make_splits(data: "FashionMNIST", config: Config) -> DataSplits:
    """The training pool (optionally its first `limit_train` images) split into train and val."""
    limit = config.data.limit_train
    images, labels = data.train_images[:limit], data.train_labels[:limit]
    train_idx, val_idx = stratified_split(labels, config.data.val_fraction, config.data.split_seed)
    limit_test = config.data.limit_test
    return DataSplits(
        train=Split(images[train_idx], labels[train_idx]),
        val=Split(images[val_idx], labels[val_idx]),
        test=Split(data.test_images[:limit_test], data.test_labels[:limit_test]),
    )


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The training order of one epoch: a pure function of (seed, epoch), so a resumed or
    re-run training, in either framework, draws exactly the same batches."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def epoch_seed(seed: int, epoch: int) -> int:
    """A 31-bit seed for a framework's random stream in one epoch (dropout masks): derived from
    (seed, epoch) alone, so a run resumed at any epoch draws what an uninterrupted one draws."""
    return int(np.random.SeedSequence([seed, epoch, 1]).generate_state(1)[0] >> 1)


def batch_slices(num_examples: int, batch_size: int) -> list[slice]:
    """Consecutive batches covering every example once; the last one may be smaller."""
    return [slice(i, min(i + batch_size, num_examples)) for i in range(0, num_examples, batch_size)]


def num_batches(num_examples: int, batch_size: int) -> int:
    return -(-num_examples // batch_size)


def to_float_nhwc(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) raw pixel values, the Keras model's input."""
    return images.astype(np.float32)[..., None]


def to_float_nchw(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) raw pixel values, the torch model's input."""
    return images.astype(np.float32)[:, None]
