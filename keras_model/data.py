"""Batches for `model.fit` from the shared numpy splits, in the shared per-epoch order."""

from __future__ import annotations

from typing import Any

import numpy as np
import keras

from fmnist.augment import augment_batch
from fmnist.config import AugmentConfig
from fmnist.splits import Split, batch_slices, epoch_permutation, to_float_nhwc


class TrainBatches(keras.utils.PyDataset):
    """All training batches of all epochs as one indexed sequence.

    Batch i belongs to epoch `first_epoch + i // batches_per_epoch`, so its content depends only
    on its index: whatever Keras prefetches, and whenever it calls the epoch hooks, the model
    sees exactly `fmnist.splits.epoch_permutation(seed, epoch)`, like the Lightning backend.
    `model.fit` is called with `steps_per_epoch=batches_per_epoch`. With `augment` (the config's
    `data.augment`), batch b of epoch e goes through `fmnist.augment.augment_batch(seed, e, b)`,
    as in the Lightning backend; None, or everything off: the raw images.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        seed: int,
        epochs: int,
        first_epoch: int = 0,
        augment: AugmentConfig | None = None,
    ) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.split, self.seed, self.first_epoch, self.epochs = split, seed, first_epoch, epochs
        self.augment = augment
        self.slices = batch_slices(len(split), batch_size)
        self._order_epoch, self._order = -1, np.empty(0, dtype=np.int64)

    @property
    def batches_per_epoch(self) -> int:
        return len(self.slices)

    @property
    def num_batches(self) -> int:
        return (self.epochs - self.first_epoch) * len(self.slices)

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        epoch, batch = divmod(index, len(self.slices))
        epoch += self.first_epoch
        if epoch != self._order_epoch:
            self._order = epoch_permutation(len(self.split), self.seed, epoch)
            self._order_epoch = epoch
        idx = self._order[self.slices[batch]]
        images = self.split.images[idx]
        if self.augment is not None:
            images = augment_batch(images, self.augment, self.seed, epoch, batch)
        return to_float_nhwc(images), self.split.labels[idx].astype(np.int32)


#: Batches the training pipeline prepares ahead of the step that uses them.
PREFETCH_BATCHES = 2


def fit_input(batches: TrainBatches) -> Any:
    """What `model.fit` reads `batches` through: the same batches, in the same order.

    On TensorFlow, a tf.data pipeline over them with autotuning off, as Keras builds for a
    PyDataset but for that one option. Autotuned (what Keras picks for a one-worker PyDataset),
    the pipeline's model thread held fit's return 10-40 s after the last epoch whenever fit also
    validated, in a process with one core (TensorFlow 2.21; measured in docs/speed.md). Keras turns
    autotuning off itself only for several workers, whose enqueuer restarts at index 0 each epoch:
    wrong for one sequence holding every epoch. Other Keras backends read the PyDataset as it is.
    """
    if keras.backend.backend() != "tensorflow":
        return batches
    import tensorflow as tf

    signature = tuple(tf.TensorSpec((None, *a.shape[1:]), a.dtype) for a in batches[0])
    dataset = tf.data.Dataset.from_generator(
        lambda: (batches[i] for i in range(len(batches))), output_signature=signature
    )
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(PREFETCH_BATCHES).with_options(options)


class EvalBatches(keras.utils.PyDataset):
    """Every image once, in order, for validation, test and prediction."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, batch_size: int) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.images, self.labels = images, labels
        self.slices = batch_slices(len(images), batch_size)

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, index: int):
        s = self.slices[index]
        x = to_float_nhwc(self.images[s])
        return x if self.labels is None else (x, self.labels[s].astype(np.int32))
