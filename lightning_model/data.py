"""A LightningDataModule over the shared numpy splits, in the shared per-epoch batch order (the
batches themselves are the torch engines' shared path, `torch_blocks.batches`).

Used the Lightning way, it makes its own data: `prepare_data` finds the four files, verifies them
and downloads what is missing (`fmnist.datasets`), `setup` loads them and cuts the splits every
engine trains on (`fmnist.splits.make_splits`). The engine's training hands it splits made once
by the core instead."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from fmnist.config import Config, as_config, with_overrides
from fmnist.datasets import load_fashion_mnist
from fmnist.splits import DataSplits, make_splits
from torch_blocks.batches import batch_loader


class FashionMNISTDataModule(L.LightningDataModule):
    def __init__(
        self,
        config: str | Config,
        data_dir: str | None = None,
        limit_train: int | None = None,
        limit_test: int | None = None,
        splits: DataSplits | None = None,
        first_epoch: int = 0,
    ) -> None:
        """config: a `Config`, or a packaged config's name (`baseline`) or a YAML file's path: the
        batch sizes, seed, validation split and augmentation. data_dir: where the files are (None:
        `FMNIST_DATA_DIR`, then the user cache, as `fmnist train --data-dir`). limit_train,
        limit_test: use only the first N images (the config's `data.limit_*`; None: as it says).
        splits: made already (`fmnist.splits.make_splits`), as the engine's training passes them;
        nothing is loaded then. first_epoch: where a resumed run starts. Lightning creates the
        first epoch's iterator before it calls the sampler's set_epoch, so the sampler must start
        there already."""
        super().__init__()
        overrides = {"data.limit_train": limit_train, "data.limit_test": limit_test}
        self.config: Config = with_overrides(as_config(config), overrides)
        self.data_dir, self.splits, self.first_epoch = data_dir, splits, first_epoch

    def prepare_data(self) -> None:
        """Find and verify the files, downloading any that are missing (once, in the first process)."""
        if self.splits is None:
            load_fashion_mnist(self.data_dir, download=True)

    def setup(self, stage: str) -> None:
        """The splits of every engine, the same in each process whatever the stage, from the
        verified files (never downloaded here: `prepare_data` did that, in one process)."""
        if self.splits is None:
            self.splits = make_splits(load_fashion_mnist(self.data_dir, download=False), self.config)

    def _shard(self) -> dict[str, int]:
        """This process's place in a multi-process (DDP) training; (0, 1) on one device."""
        trainer = self.trainer
        return {"rank": trainer.global_rank, "world_size": trainer.world_size} if trainer else {}

    def train_dataloader(self) -> DataLoader:
        t = self.config.train
        return batch_loader(
            self.splits.train,
            t.batch_size,
            self.config.seed,
            shuffle=True,
            first_epoch=self.first_epoch,
            augment=self.config.data.augment,
            **self._shard(),
        )

    def val_dataloader(self) -> DataLoader:
        return batch_loader(self.splits.val, self.config.train.eval_batch_size, **self._shard())

    def test_dataloader(self) -> DataLoader:
        """(images, labels) batches; over several processes each takes its share, and the test
        metrics add up across them (torchmetrics)."""
        return batch_loader(self.splits.test, self.config.train.eval_batch_size, **self._shard())

    def predict_dataloader(self) -> DataLoader:
        """The whole test set in order, in this process: the engine's test logits."""
        return batch_loader(self.splits.test, self.config.train.eval_batch_size)
