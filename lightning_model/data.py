"""A LightningDataModule over the shared numpy splits, in the shared per-epoch batch order (the
batches themselves are the torch engines' shared path, `torch_blocks.batches`)."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from fmnist.config import Config
from fmnist.splits import DataSplits
from torch_blocks.batches import batch_loader


class FashionMNISTDataModule(L.LightningDataModule):
    def __init__(self, config: Config, splits: DataSplits, first_epoch: int = 0) -> None:
        """splits: made once by the core (`fmnist.splits.make_splits`), so both backends train on the
        same images; nothing is loaded here. first_epoch: where a resumed run starts. Lightning
        creates the first epoch's iterator before it calls the sampler's set_epoch, so the sampler
        must start there already."""
        super().__init__()
        self.config, self.splits, self.first_epoch = config, splits, first_epoch

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
        return batch_loader(self.splits.test, self.config.train.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
