"""`FashionClassifier` and `FashionMNISTDataModule` under LightningCLI, the command line Lightning
users know: `python -m lightning_model.cli fit --model.config baseline`, then `validate`, `test`
or `predict` with `--ckpt_path`. Every Trainer option is there (`--trainer.max_epochs`,
`--trainer.precision`, ...), a YAML file of them with `--config`, the settings used in each log
folder (`config.yaml`).

This is Lightning's own loop and logger, for working with the two classes; `fmnist train
--engine lightning` is the project's run (its run directory, metrics and reports, the same for
every engine).
"""

from __future__ import annotations

from collections.abc import Sequence

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from fmnist.config import as_config
from lightning_model.data import FashionMNISTDataModule
from lightning_model.module import FashionClassifier


class FashionCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """One config for both: the data module takes the model's (batch sizes, seed, splits)."""
        parser.link_arguments("model.config", "data.config")

    def parse_arguments(self, parser: LightningArgumentParser, args: Sequence[str] | None) -> None:
        """What the config says where the command line leaves it open: the epochs its schedule
        spans (`--trainer.max_epochs`, unless `--trainer.max_steps` is given), and its seed for
        the network's initial weights (`--seed_everything`; the batch order always takes it)."""
        super().parse_arguments(parser, args)
        section = self.config[self.config.subcommand] if self.config.get("subcommand") else self.config
        config = as_config(section.model.config)
        trainer = section.trainer
        if trainer.max_epochs is None and trainer.max_steps in (None, -1):
            trainer.max_epochs = config.train.epochs
        if section.seed_everything is True:  # LightningCLI's default: a random seed
            section.seed_everything = config.seed


def main(args: Sequence[str] | None = None) -> FashionCLI:
    """args: the command line's words (None: sys.argv)."""
    return FashionCLI(
        FashionClassifier,
        FashionMNISTDataModule,
        # The data module shards each batch over the processes itself (torch_blocks.batches):
        # Lightning's DistributedSampler around it would cut every share again.
        trainer_defaults={"use_distributed_sampler": False},
        args=list(args) if args is not None else None,
    )


if __name__ == "__main__":
    main()
