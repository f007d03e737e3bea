"""The Lightning engine's classes used the Lightning way (docs/api.md): the data module makes its
own data, a plain `Trainer` fits, validates, tests and predicts with them, and LightningCLI runs
them from the command line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmnist.config import with_overrides
from fmnist.splits import DataSplits, Split


def _trainer(tmp_path, **options):
    import lightning as L

    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **options,
    )


def test_a_plain_trainer_fits_validates_tests_and_predicts_with_the_data_module(real_data_dir, tmp_path):
    """The data module finds and verifies the files, then cuts the shared splits; `trainer.test`
    scores the test loader with the module's test_step, the same figure as the argmax of
    `trainer.predict`'s logits on the same images."""
    from lightning_model.data import FashionMNISTDataModule
    from lightning_model.module import FashionClassifier

    data = FashionMNISTDataModule("baseline", data_dir=str(real_data_dir), limit_train=300, limit_test=150)
    model = FashionClassifier("baseline")
    trainer = _trainer(tmp_path, max_epochs=1)
    trainer.fit(model, data)
    assert (len(data.splits.train), len(data.splits.val), len(data.splits.test)) == (270, 30, 150)
    [validated] = trainer.validate(model, data, verbose=False)
    [tested] = trainer.test(model, data, verbose=False)
    logits = torch.cat(trainer.predict(model, data))
    assert logits.shape == (150, 10) and logits.dtype == torch.float32
    predicted = logits.argmax(dim=1).numpy()
    assert tested["test/accuracy"] == pytest.approx(float(np.mean(predicted == data.splits.test.labels)))
    assert np.isfinite(tested["test/loss"]) and np.isfinite(validated["val/loss"])
    assert 0.0 <= validated["val/accuracy"] <= 1.0


def test_given_splits_are_used_as_they_are_and_no_file_is_read(baseline_config, tiny_images, tmp_path):
    """The engine's training hands the data module the splits it made once: prepare_data and
    setup leave them alone, even with a folder that holds no data."""
    from lightning_model.data import FashionMNISTDataModule

    images, labels = tiny_images
    splits = DataSplits(Split(images[:150], labels[:150]), Split(images[150:], labels[150:]), Split(images, labels))
    data = FashionMNISTDataModule(baseline_config, data_dir=str(tmp_path), splits=splits)
    data.prepare_data()
    data.setup("fit")
    assert data.splits is splits
    x, y = next(iter(data.test_dataloader()))
    assert x.shape == (200, 1, 28, 28)  # one evaluation batch (1,000 images at most)
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))


def test_predict_step_takes_batches_with_or_without_labels(baseline_config, tiny_images):
    from lightning_model.module import FashionClassifier

    model = FashionClassifier.from_config(baseline_config).eval()
    images, labels = tiny_images
    x, y = torch.from_numpy(images[:8]).unsqueeze(1).float(), torch.from_numpy(labels[:8].astype(np.int64))
    with torch.no_grad():
        plain = model.predict_step(x, 0)
        assert plain.shape == (8, 10)
        assert torch.equal(model.predict_step((x,), 0), plain)
        assert torch.equal(model.predict_step((x, y), 0), plain)


def test_the_checkpoint_keeps_the_resolved_config_whatever_named_it(baseline_config, tmp_path):
    """A name, a path or a dict: the checkpoint stores the config itself, so it loads with no file."""
    from lightning_model.module import FashionClassifier

    config = with_overrides(baseline_config, {"model.dense": [32]})
    module = FashionClassifier.from_config(config)
    trainer = _trainer(tmp_path, max_epochs=0)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = FashionClassifier.load_from_checkpoint(tmp_path / "m.ckpt", map_location="cpu", weights_only=True)
    assert loaded.config == config
    assert FashionClassifier("baseline").config == baseline_config


def _cli_args(real_data_dir, tmp_path, *extra: str) -> list[str]:
    return [
        "--model.config",
        "baseline",
        "--data.data_dir",
        str(real_data_dir),
        "--data.limit_train",
        "300",
        "--data.limit_test",
        "100",
        "--trainer.accelerator",
        "cpu",
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.default_root_dir",
        str(tmp_path),
        *extra,
    ]


@pytest.fixture
def cli_argv(monkeypatch):
    """LightningCLI given its words, with pytest's own command line out of sys.argv."""
    monkeypatch.setattr("sys.argv", ["lightning_model.cli"])


def test_lightning_cli_fits_one_epoch_and_the_checkpoint_loads(real_data_dir, tmp_path, cli_argv):
    """`python -m lightning_model.cli fit ...`, in this process: one config for model and data,
    the limits reach the splits, and Lightning's checkpoint loads back into the module."""
    from lightning_model.cli import main
    from lightning_model.module import FashionClassifier

    cli = main(["fit", *_cli_args(real_data_dir, tmp_path, "--trainer.max_epochs", "1")])
    assert cli.trainer.current_epoch == 1 and cli.trainer.global_step == 3  # 270 images, batches of 128
    assert cli.datamodule.config.data.limit_train == 300 and len(cli.datamodule.splits.train) == 270
    assert cli.datamodule.config.model == cli.model.config.model
    [checkpoint] = (tmp_path / "checkpoints").glob("*.ckpt")
    loaded = FashionClassifier.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    for name, value in cli.model.network.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[name], value), name


def test_lightning_cli_takes_epochs_and_seed_from_the_config_unless_told(real_data_dir, tmp_path, cli_argv):
    from lightning.pytorch.cli import LightningCLI

    from lightning_model.cli import FashionCLI
    from lightning_model.data import FashionMNISTDataModule
    from lightning_model.module import FashionClassifier

    def parsed(*extra: str) -> LightningCLI:
        args = [*_cli_args(real_data_dir, tmp_path, *extra)]
        return FashionCLI(FashionClassifier, FashionMNISTDataModule, args=args, run=False)

    default = parsed()
    assert default.trainer.max_epochs == default.model.config.train.epochs == 15
    assert default.config.seed_everything == default.model.config.seed
    told = parsed("--trainer.max_epochs", "2", "--seed_everything", "7")
    assert told.trainer.max_epochs == 2 and told.config.seed_everything == 7
