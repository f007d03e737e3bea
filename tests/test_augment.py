"""Augmentation: a pure function of (seed, epoch, batch), label-preserving, each operation doing
what it says, and the very same augmented batches in the Keras and the Lightning pipelines."""

from __future__ import annotations

import numpy as np
import pytest

from fmnist.augment import augment_batch
from fmnist.config import AugmentConfig
from fmnist.distributed import split_batch
from fmnist.splits import Split

ALL = AugmentConfig(crop_padding=3, flip=0.5, erase=0.5)


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(1).integers(1, 256, size=(64, 28, 28), dtype=np.uint8)


def test_a_pure_function_of_seed_epoch_and_batch(images):
    out = augment_batch(images, ALL, seed=3, epoch=2, batch_index=5)
    assert np.array_equal(out, augment_batch(images.copy(), ALL, seed=3, epoch=2, batch_index=5))
    for other in [(3, 2, 6), (3, 1, 5), (4, 2, 5)]:
        assert not np.array_equal(out, augment_batch(images, ALL, *other))


def test_shape_dtype_and_range_are_kept(images):
    extreme = AugmentConfig(crop_padding=14, flip=1.0, erase=1.0, erase_scale=(0.5, 1.0), erase_value=255)
    for config in [ALL, extreme]:
        out = augment_batch(images, config, 0, 0, 0)
        assert out.shape == images.shape and out.dtype == np.uint8 and out is not images
    unchanged = images.copy()
    augment_batch(images, ALL, 0, 0, 0)
    assert np.array_equal(images, unchanged)  # the split's images are never written


def test_disabled_is_the_identity(images):
    assert AugmentConfig().enabled is False
    assert augment_batch(images, AugmentConfig(), 0, 0, 0) is images


def test_flip_mirrors(images):
    assert np.array_equal(augment_batch(images, AugmentConfig(flip=1.0), 0, 0, 0), images[:, :, ::-1])
    out = augment_batch(images, AugmentConfig(flip=0.5), 0, 0, 0)
    flipped = np.array([np.array_equal(o, x[:, ::-1]) for o, x in zip(out, images)])
    kept = np.array([np.array_equal(o, x) for o, x in zip(out, images)])
    assert np.all(flipped ^ kept) and 10 < flipped.sum() < 54


def test_crop_is_a_translation_of_the_zero_padded_image(images):
    pad = 3
    out = augment_batch(images, AugmentConfig(crop_padding=pad), 0, 0, 0)
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    shifts = set()
    for i in range(len(images)):
        found = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if np.array_equal(out[i], padded[i, dy : dy + 28, dx : dx + 28])
        ]
        assert len(found) == 1
        shifts.add(found[0])
    assert len(shifts) > 20  # of 49 possible


@pytest.mark.parametrize("value", [0, 7])
def test_erasing_fills_one_rectangle_within_the_area_bounds(value):
    white = np.full((200, 28, 28), 255, dtype=np.uint8)
    scale, ratio = (0.02, 0.25), (0.3, 3.3)
    config = AugmentConfig(erase=1.0, erase_scale=scale, erase_ratio=ratio, erase_value=value)
    out = augment_batch(white, config, 0, 0, 0)
    assert set(np.unique(out)) <= {value, 255}
    for image in out:
        rows, cols = np.flatnonzero((image == value).any(1)), np.flatnonzero((image == value).any(0))
        h, w = len(rows), len(cols)
        assert np.all(image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] == value)  # a filled rectangle
        assert h * w == np.sum(image == value) and rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w
        slack = (h + w) / 2 + 0.25  # the sides are rounded to whole pixels
        assert scale[0] * 784 - slack <= h * w <= scale[1] * 784 + slack
        assert ratio[0] * 0.7 <= h / w <= ratio[1] / 0.7
    half = augment_batch(white, AugmentConfig(erase=0.5), 0, 0, 0)
    assert 60 < np.sum((half == 0).any(axis=(1, 2))) < 140


def test_turning_one_operation_on_leaves_the_others_draws_alone(images):
    flips = augment_batch(images, AugmentConfig(flip=0.5), 0, 0, 0)
    flips_and_erasing = augment_batch(images, AugmentConfig(flip=0.5, erase=1.0, erase_value=0), 0, 0, 0)
    assert np.all((flips_and_erasing == flips) | (flips_and_erasing == 0))


def test_shares_of_a_global_batch_equal_the_whole(images):
    whole = augment_batch(images, ALL, 0, 1, 2)
    for world_size in (2, 3):
        parts = [
            augment_batch(images[p], ALL, 0, 1, 2, positions=p, batch_size=len(images))
            for p in (split_batch(np.arange(len(images)), world_size, r) for r in range(world_size))
        ]
        assert np.array_equal(np.concatenate(parts), whole)


def test_both_engines_train_on_the_same_augmented_batches(tiny_images):
    """Keras' PyDataset and Lightning's loader (one process, and two DDP shares) give the same
    augmented float batches and untouched labels; a resumed run continues the same stream."""
    from keras_model.data import TrainBatches
    from torch_blocks.batches import batch_loader

    split = Split(*tiny_images)
    keras_batches = TrainBatches(split, batch_size=32, seed=5, epochs=2, augment=ALL)
    raw = TrainBatches(split, batch_size=32, seed=5, epochs=2)
    loader = batch_loader(split, 32, seed=5, shuffle=True, augment=ALL)
    shards = [batch_loader(split, 32, seed=5, shuffle=True, rank=r, world_size=2, augment=ALL) for r in (0, 1)]
    n = keras_batches.batches_per_epoch
    for epoch in range(2):
        for each in [loader, *shards]:
            each.sampler.set_epoch(epoch)
        for b, ((x_t, y_t), *parts) in enumerate(zip(loader, *shards)):
            x_k, y_k = keras_batches[epoch * n + b]
            assert x_k.dtype == np.float32 and x_t.dtype.is_floating_point
            assert np.array_equal(x_k[..., 0], x_t[:, 0].numpy()) and np.array_equal(y_k, y_t.numpy())
            x_raw, y_raw = raw[epoch * n + b]
            assert np.array_equal(y_k, y_raw) and not np.array_equal(x_k, x_raw)
            assert np.array_equal(np.concatenate([x[:, 0].numpy() for x, _ in parts]), x_t[:, 0].numpy())
        assert b == n - 1
    resumed = TrainBatches(split, batch_size=32, seed=5, epochs=2, first_epoch=1, augment=ALL)
    assert np.array_equal(resumed[0][0], keras_batches[n][0])
    # All off: the batches of today, in both.
    off = batch_loader(split, 32, seed=5, shuffle=True, augment=AugmentConfig())
    assert np.array_equal(next(iter(off))[0][:, 0].numpy(), raw[0][0][..., 0])
    assert np.array_equal(TrainBatches(split, 32, 5, 2, augment=AugmentConfig())[0][0], raw[0][0])
