"""A LightningDataModule over the shared numpy splits, in the shared per-epoch batch order."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fmnist.config import Config
from fmnist.datasets import load_fashion_mnist
from fmnist.distributed import split_batch
from fmnist.splits import DataSplits, Split, batch_slices, epoch_permutation, make_splits


class BatchIndexSampler(Sampler[np.ndarray]):
    """Yields one array of indices per batch: `epoch_permutation(seed, epoch)` cut into batches,
    or every index in order when `shuffle` is off. Lightning calls `set_epoch` each epoch.

    Over several processes (DDP) each global batch is cut into `world_size` contiguous shares
    and this process takes share `rank`: together they see every image once, with no padding
    and no duplicates (unlike DistributedSampler), and the global batch is the one a single
    device would see. A training batch smaller than the number of processes is dropped (every
    process must take the same number of steps); evaluation batches are never dropped.
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int = 0, shuffle: bool = False,
                 rank: int = 0, world_size: int = 1) -> None:
        self.num_examples, self.seed, self.shuffle = num_examples, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.slices = batch_slices(num_examples, batch_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[np.ndarray]:
        order = (epoch_permutation(self.num_examples, self.seed, self.epoch) if self.shuffle
                 else np.arange(self.num_examples))
        for s in self.slices:
            batch = order[s]
            if self.world_size > 1:
                if self.shuffle and len(batch) < self.world_size:
                    continue
                batch = split_batch(batch, self.world_size, self.rank)
                if len(batch) == 0:
                    continue
            yield batch

    def __len__(self) -> int:
        if self.world_size == 1:
            return len(self.slices)
        sizes = [s.stop - s.start for s in self.slices]
        if self.shuffle:
            return sum(size >= self.world_size for size in sizes)
        return sum(size > self.rank for size in sizes)


class BatchDataset(Dataset):
    """Indexed by an array of indices, returns a whole batch: no per-image Python work."""

    def __init__(self, split: Split) -> None:
        self.images = torch.from_numpy(split.images)
        self.labels = torch.from_numpy(split.labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        idx_t = torch.from_numpy(idx)
        return self.images[idx_t].unsqueeze(1).float(), self.labels[idx_t]


def batch_loader(split: Split, batch_size: int, seed: int = 0, shuffle: bool = False,
                 first_epoch: int = 0, rank: int = 0, world_size: int = 1) -> DataLoader:
    """batch_size=None: the sampler already yields whole batches; nothing is dropped.

    The loader gets a generator of its own: by default each new iterator draws a seed from
    torch's global generator, which would shift the dropout masks by whenever Lightning happens
    to create it (earlier on the first epoch of a resumed run than in an uninterrupted one).
    """
    sampler = BatchIndexSampler(len(split), batch_size, seed, shuffle, rank, world_size)
    sampler.set_epoch(first_epoch)
    return DataLoader(BatchDataset(split), sampler=sampler, batch_size=None, num_workers=0,
                      generator=torch.Generator().manual_seed(seed))


class FashionMNISTDataModule(L.LightningDataModule):
    def __init__(self, config: Config, data_dir: str | None = None, splits: DataSplits | None = None,
                 first_epoch: int = 0) -> None:
        """first_epoch: where a resumed run starts. Lightning creates the first epoch's iterator
        before it calls the sampler's set_epoch, so the sampler must start there already."""
        super().__init__()
        self.config, self.data_dir, self.splits, self.first_epoch = config, data_dir, splits, first_epoch

    def prepare_data(self) -> None:
        if self.splits is None:
            load_fashion_mnist(self.data_dir)  # verifies, or downloads into the cache

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = make_splits(load_fashion_mnist(self.data_dir, download=False), self.config)

    def _shard(self) -> dict[str, int]:
        """This process's place in a multi-process (DDP) training; (0, 1) on one device."""
        trainer = self.trainer
        return {"rank": trainer.global_rank, "world_size": trainer.world_size} if trainer else {}

    def train_dataloader(self) -> DataLoader:
        t = self.config.train
        return batch_loader(self.splits.train, t.batch_size, self.config.seed, shuffle=True,
                            first_epoch=self.first_epoch, **self._shard())

    def val_dataloader(self) -> DataLoader:
        return batch_loader(self.splits.val, self.config.train.eval_batch_size, **self._shard())

    def test_dataloader(self) -> DataLoader:
        return batch_loader(self.splits.test, self.config.train.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
