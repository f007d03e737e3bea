"""The batch path of every torch engine: the shared numpy splits as torch batches, in the shared
per-epoch batch order (`fmnist.splits.epoch_permutation`) and with the shared augmentation
(`fmnist.augment`), whole batches at a time. Lightning's data module and the plain loop both read
their batches here, so both engines see the same images in the same order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fmnist.augment import augment_batch
from fmnist.config import AugmentConfig
from fmnist.distributed import split_batch
from fmnist.splits import Split, batch_slices, epoch_permutation


class BatchKey(NamedTuple):
    """One (share of a) batch and its place in the shared stream, which augmentation depends on."""

    indices: np.ndarray  # into the split: this process's images
    seed: int
    epoch: int
    batch_index: int  # within the epoch
    positions: np.ndarray | None  # of `indices` in the global batch (DDP share); None: all of it
    batch_size: int  # of the global batch


class BatchIndexSampler(Sampler[np.ndarray | BatchKey]):
    """Yields one array of indices per batch: `epoch_permutation(seed, epoch)` cut into batches,
    or every index in order when `shuffle` is off. The loop (Lightning's, or the plain one) calls
    `set_epoch` each epoch.
    With `keyed`, yields a `BatchKey` instead: the indices with where they sit (for augmentation).

    Over several processes (DDP) each global batch is cut into `world_size` contiguous shares
    and this process takes share `rank`: together they see every image once, with no padding
    and no duplicates (unlike DistributedSampler), and the global batch is the one a single
    device would see. A training batch smaller than the number of processes is dropped (every
    process must take the same number of steps); evaluation batches are never dropped.
    """

    def __init__(
        self,
        num_examples: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = False,
        rank: int = 0,
        world_size: int = 1,
        keyed: bool = False,
    ) -> None:
        self.num_examples, self.seed, self.shuffle, self.keyed = num_examples, seed, shuffle, keyed
        self.rank, self.world_size = rank, world_size
        self.slices = batch_slices(num_examples, batch_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[np.ndarray | BatchKey]:
        order = (
            epoch_permutation(self.num_examples, self.seed, self.epoch)
            if self.shuffle
            else np.arange(self.num_examples)
        )
        for b, s in enumerate(self.slices):
            batch, positions = order[s], None
            if self.world_size > 1:
                if self.shuffle and len(batch) < self.world_size:
                    continue
                positions = split_batch(np.arange(len(batch)), self.world_size, self.rank)
                if len(positions) == 0:
                    continue
            if self.keyed:
                yield BatchKey(
                    batch if positions is None else batch[positions], self.seed, self.epoch, b, positions, len(batch)
                )
            else:
                yield batch if positions is None else batch[positions]

    def __len__(self) -> int:
        if self.world_size == 1:
            return len(self.slices)
        sizes = [s.stop - s.start for s in self.slices]
        if self.shuffle:
            return sum(size >= self.world_size for size in sizes)
        return sum(size > self.rank for size in sizes)


class BatchDataset(Dataset):
    """Indexed by an array of indices, returns a whole batch: no per-image Python work.

    Indexed by a `BatchKey` and given `augment`, the images go through
    `fmnist.augment.augment_batch` first, exactly as the Keras engines' `TrainBatches` does.
    """

    def __init__(self, split: Split, augment: AugmentConfig | None = None) -> None:
        self.split, self.augment = split, augment
        self.images = torch.from_numpy(split.images)
        self.labels = torch.from_numpy(split.labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: np.ndarray | BatchKey) -> tuple[torch.Tensor, torch.Tensor]:
        idx_t = torch.from_numpy(key.indices if isinstance(key, BatchKey) else key)
        if isinstance(key, BatchKey) and self.augment is not None:
            images = augment_batch(
                self.split.images[key.indices],
                self.augment,
                key.seed,
                key.epoch,
                key.batch_index,
                key.positions,
                key.batch_size,
            )
            return torch.from_numpy(images).unsqueeze(1).float(), self.labels[idx_t]
        return self.images[idx_t].unsqueeze(1).float(), self.labels[idx_t]


def batch_loader(
    split: Split,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = False,
    first_epoch: int = 0,
    rank: int = 0,
    world_size: int = 1,
    augment: AugmentConfig | None = None,
) -> DataLoader:
    """batch_size=None: the sampler already yields whole batches; nothing is dropped.

    augment: the config's `data.augment`, for the training loader (None or all off: raw images).

    The loader gets a generator of its own: by default each new iterator draws a seed from
    torch's global generator, which would shift the dropout masks by whenever the loop happens
    to create it (earlier on the first epoch of a resumed run than in an uninterrupted one).
    """
    augment = augment if augment is not None and augment.enabled else None
    sampler = BatchIndexSampler(len(split), batch_size, seed, shuffle, rank, world_size, keyed=augment is not None)
    sampler.set_epoch(first_epoch)
    return DataLoader(
        BatchDataset(split, augment),
        sampler=sampler,
        batch_size=None,
        num_workers=0,
        generator=torch.Generator().manual_seed(seed),
    )
