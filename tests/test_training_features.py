"""The training features wired into both engines with the same semantics: decoupled weight
decay (Keras AdamW = KerasAdam with weight_decay), label smoothing, the learning rate of every
step, and early stopping on validation accuracy with the best epoch restored."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fmnist.config import load_config, save_config, with_overrides
from fmnist.schedules import lr_at_epoch, lr_at_step
from fmnist.splits import DataSplits, Split
from torch_blocks.optim import KerasAdam


# --- AdamW -------------------------------------------------------------------------------------


def test_both_engines_build_adamw_from_the_config(baseline_config):
    import keras

    from keras_model.training import make_optimizer
    from lightning_model.module import FashionClassifier

    config = with_overrides(baseline_config, {"train.optimizer.name": "adamw", "train.optimizer.weight_decay": 0.05})
    keras_opt = make_optimizer(config)
    assert isinstance(keras_opt, keras.optimizers.AdamW) and keras_opt.weight_decay == 0.05
    torch_opt = FashionClassifier.from_config(config).configure_optimizers()["optimizer"]
    assert isinstance(torch_opt, KerasAdam) and torch_opt.param_groups[0]["weight_decay"] == 0.05
    plain = FashionClassifier.from_config(baseline_config).configure_optimizers()["optimizer"]
    assert plain.param_groups[0]["weight_decay"] == 0.0


# --- label smoothing ---------------------------------------------------------------------------


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_label_smoothed_losses_and_gradients_agree(baseline_config, smoothing):
    import keras
    import tensorflow as tf

    from keras_model.losses import SparseCrossentropyWithSmoothing, training_loss
    from lightning_model.module import FashionClassifier

    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(64, 10)) * 3).astype(np.float32)
    labels = rng.integers(0, 10, size=64)
    loss = training_loss(smoothing)
    assert isinstance(
        loss, SparseCrossentropyWithSmoothing if smoothing else keras.losses.SparseCategoricalCrossentropy
    )
    x = tf.Variable(logits)
    with tf.GradientTape() as tape:
        keras_loss = loss(labels.astype(np.int32), x)
    keras_grad = tape.gradient(keras_loss, x).numpy()

    module = FashionClassifier.from_config(with_overrides(baseline_config, {"train.label_smoothing": smoothing}))
    t = torch.tensor(logits, requires_grad=True)
    torch_loss = module.loss(t, torch.from_numpy(labels))
    torch_loss.backward()
    assert float(keras_loss) == pytest.approx(torch_loss.item(), rel=1e-6)
    assert np.abs(keras_grad - t.grad.numpy()).max() < 1e-7
    reference = F.cross_entropy(
        torch.tensor(logits, dtype=torch.float64), torch.from_numpy(labels), label_smoothing=smoothing
    )
    assert float(keras_loss) == pytest.approx(reference.item(), rel=1e-6)


def test_a_model_compiled_with_smoothing_saves_and_loads(baseline_config, tmp_path):
    import keras

    from keras_model.training import compile_model, load_model
    from keras_model.losses import SparseCrossentropyWithSmoothing
    from keras_model.model import build_model

    config = with_overrides(baseline_config, {"train.label_smoothing": 0.1})
    model = compile_model(build_model(config), config)
    model.save(tmp_path / "model.keras")
    # Compiled, as a user's own keras.saving.load_model does: the registered loss comes back.
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.loss, SparseCrossentropyWithSmoothing) and loaded.loss.label_smoothing == 0.1
    x = np.zeros((2, 28, 28, 1), np.float32)
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # The project's own loader, for prediction and export, loads it uncompiled: the same function.
    assert np.array_equal(load_model(tmp_path).predict(x, verbose=0), model.predict(x, verbose=0))
    again = keras.losses.deserialize(keras.losses.serialize(loaded.loss))
    assert again.get_config() == loaded.loss.get_config()


# --- the learning rate of every step -----------------------------------------------------------


def _tiny_splits(tiny_images) -> DataSplits:
    images, labels = tiny_images
    return DataSplits(
        train=Split(images[:150], labels[:150]),
        val=Split(images[150:], labels[150:]),
        test=Split(images[150:], labels[150:]),
    )


SCHEDULES = {
    "onecycle per step": {
        "train.schedule.name": "onecycle",
        "train.schedule.per_step": True,
        "train.schedule.min_lr": 1e-6,
        "train.optimizer.lr": 3e-3,
    },
    "cosine, warm-up per step": {
        "train.schedule.name": "cosine",
        "train.schedule.per_step": True,
        "train.schedule.warmup_epochs": 1.5,
    },
    "cosine, warm-up per epoch": {"train.schedule.name": "cosine", "train.schedule.warmup_epochs": 1},
}


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_both_engines_train_every_step_at_the_same_rate(baseline_config, tiny_images, tmp_path, schedule):
    """A tiny training in each engine, with its own schedule wiring (Keras: ScheduledLearningRate;
    Lightning: the module's LambdaLR), augmentation, AdamW and label smoothing on: the rate of every
    step, and the per-epoch `lr` both report for metrics.csv, are the shared schedule's."""
    import keras
    import lightning as L

    from keras_model.training import compile_model, fit
    from keras_model.callbacks import EpochReport as KerasEpochReport, ScheduledLearningRate
    from keras_model.data import EvalBatches, TrainBatches
    from keras_model.model import build_model
    from lightning_model.callbacks import EpochReport as LightningEpochReport
    from lightning_model.data import FashionMNISTDataModule
    from lightning_model.module import FashionClassifier

    config = with_overrides(
        baseline_config,
        {
            "train.epochs": 3,
            "train.batch_size": 32,
            "train.label_smoothing": 0.1,
            "train.optimizer.name": "adamw",
            "train.optimizer.weight_decay": 0.01,
            "data.augment.crop_padding": 2,
            "data.augment.flip": 0.5,
            "data.augment.erase": 0.5,
            **SCHEDULES[schedule],
        },
    )
    t, splits = config.train, _tiny_splits(tiny_images)
    steps_per_epoch = 5  # 150 images in batches of 32
    expected = [np.float32(lr_at_step(t, s, steps_per_epoch)) for s in range(t.epochs * steps_per_epoch)]

    class KerasRecorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rates = []

        def on_train_batch_begin(self, batch, logs=None):
            self.rates.append(np.float32(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    keras.utils.set_random_seed(0)
    model = compile_model(build_model(config), config)
    train_data = TrainBatches(splits.train, t.batch_size, config.seed, t.epochs, augment=config.data.augment)
    assert train_data.batches_per_epoch == steps_per_epoch
    keras_rows, keras_rates = [], KerasRecorder()
    fit(
        model,
        train_data,
        EvalBatches(splits.val.images, splits.val.labels, t.eval_batch_size),
        [ScheduledLearningRate(t, steps_per_epoch), keras_rates, KerasEpochReport(keras_rows.append)],
    )

    class LightningRecorder(L.Callback):
        def __init__(self):
            self.rates = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.rates.append(np.float32(trainer.optimizers[0].param_groups[0]["lr"]))

    L.seed_everything(0, verbose=False)
    lightning_rows, lightning_rates = [], LightningRecorder()
    trainer = L.Trainer(
        max_epochs=t.epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        callbacks=[lightning_rates, LightningEpochReport(lightning_rows.append)],
    )
    trainer.fit(FashionClassifier.from_config(config), datamodule=FashionMNISTDataModule(config, splits=splits))

    assert keras_rates.rates == expected
    assert lightning_rates.rates == expected
    last_step = [expected[(e + 1) * steps_per_epoch - 1] for e in range(t.epochs)]
    assert [np.float32(r["lr"]) for r in keras_rows] == last_step
    assert [np.float32(r["lr"]) for r in lightning_rows] == last_step
    if not t.schedule.per_step:
        assert last_step == [np.float32(lr_at_epoch(t, e)) for e in range(t.epochs)]


def test_lockstep_outside_a_trainer_gets_the_bare_optimizer_at_the_base_rate(baseline_config):
    """parity.run's lockstep trains Keras' compiled optimizer (the base rate, no schedule
    callback) against `configure_optimizers()["optimizer"]` used outside a Trainer."""
    from lightning_model.module import FashionClassifier

    config = with_overrides(baseline_config, {"train.schedule.name": "onecycle", "train.schedule.per_step": True})
    out = FashionClassifier.from_config(config).configure_optimizers()
    assert "lr_scheduler" not in out and out["optimizer"].param_groups[0]["lr"] == config.train.optimizer.lr


# --- early stopping ----------------------------------------------------------------------------


class _FakeKerasModel:
    """What EarlyStopping touches: the weights (here, the epoch they are from) and stop_training."""

    def __init__(self):
        self.epoch_of_weights, self.stop_training = -1, False

    def get_weights(self):
        return [np.array(self.epoch_of_weights, dtype=np.float32)]

    def set_weights(self, weights):
        self.epoch_of_weights = int(weights[0])


def _keras_run(callback, model, accuracies, first_epoch=0):
    callback.set_model(model)
    callback.on_train_begin()
    ran = first_epoch
    for epoch in range(first_epoch, len(accuracies)):
        model.epoch_of_weights = epoch
        callback.on_epoch_end(epoch, {"val_accuracy": accuracies[epoch]})
        ran = epoch + 1
        if model.stop_training:
            break
    callback.on_train_end()
    return ran, model.epoch_of_weights


def _lightning_run(callback, accuracies, first_epoch=0):
    module = types.SimpleNamespace(network=torch.nn.Linear(1, 1, bias=False))
    trainer = types.SimpleNamespace(callback_metrics={}, current_epoch=first_epoch, should_stop=False)
    callback.on_train_start(trainer, module)
    ran = first_epoch
    for epoch in range(first_epoch, len(accuracies)):
        if trainer.should_stop:
            break
        module.network.weight.data.fill_(epoch)
        trainer.current_epoch = epoch
        trainer.callback_metrics = {"val/accuracy": torch.tensor(accuracies[epoch]), "val/loss": torch.tensor(1.0)}
        callback.on_train_epoch_end(trainer, module)
        ran = epoch + 1
    callback.on_train_end(trainer, module)
    return ran, int(module.network.weight.item())


SEQUENCES = [  # validation accuracies per epoch, exact in float32
    [0.5, 0.625, 0.625, 0.5, 0.75, 0.75, 0.5, 0.875],
    [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
    [0.875, 0.75, 0.625, 0.5, 0.375],
    [0.25, 0.375, 0.5, 0.625, 0.75],
    [0.5, 0.4375, 0.5, 0.5625, 0.5, 0.5, 0.5, 0.5],
]


@pytest.mark.parametrize("patience", [1, 2, 3])
@pytest.mark.parametrize("accuracies", SEQUENCES)
def test_early_stopping_stops_and_restores_the_same_epoch_in_both_engines(accuracies, patience):
    from keras_model.callbacks import early_stopping
    from lightning_model.callbacks import EarlyStoppingOnValAccuracy

    from fmnist.config import TrainConfig

    keras_cb = early_stopping(TrainConfig(early_stopping=patience))
    keras_result = _keras_run(keras_cb, _FakeKerasModel(), accuracies)
    lightning_result = _lightning_run(EarlyStoppingOnValAccuracy(patience), accuracies)
    assert keras_result == lightning_result
    ran, restored = keras_result
    seen = accuracies[:ran]
    assert restored == seen.index(max(seen))  # the first epoch with the best accuracy
    if ran < len(accuracies):  # stopped: `patience` epochs without a new best
        assert ran - 1 - restored == patience
    assert early_stopping(TrainConfig()) is None


@pytest.mark.parametrize("cut", [1, 2, 4, 5])
def test_early_stopping_resumes_where_it_was(cut, tmp_path):
    """Interrupted after `cut` epochs and resumed from the saved state, both callbacks end as an
    uninterrupted run (also when the stop had happened before the interruption)."""
    from keras_model.callbacks import EarlyStoppingOnValAccuracy as KerasStopper
    from lightning_model.callbacks import EarlyStoppingOnValAccuracy as LightningStopper

    accuracies, patience = SEQUENCES[0], 2
    straight = _keras_run(KerasStopper(patience), _FakeKerasModel(), accuracies)
    first = KerasStopper(patience, tmp_path)
    ran, _ = _keras_run(first, _FakeKerasModel(), accuracies[:cut])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"early_stopping-{e}.npz" for e in range(max(ran - 1, 1), ran + 1)
    ]
    resumed = KerasStopper(patience, tmp_path)
    if resumed.resume(ran):  # the stop had happened: nothing left to train, restore only
        model = _FakeKerasModel()
        model.set_weights(resumed.best_weights)
        assert (ran, model.epoch_of_weights) == straight
    else:
        assert _keras_run(resumed, _FakeKerasModel(), accuracies, first_epoch=ran) == straight

    lightning_straight = _lightning_run(LightningStopper(patience), accuracies)
    first = LightningStopper(patience)
    ran, _ = _lightning_run(first, accuracies[:cut])
    state = torch.load(_save(first.state_dict(), tmp_path / "state.pt"), weights_only=True)  # as in a checkpoint
    resumed = LightningStopper(patience)
    resumed.load_state_dict(state)
    assert _lightning_run(resumed, accuracies, first_epoch=ran) == lightning_straight == straight


def _save(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


@pytest.fixture(scope="module")
def early_stopped_runs(tmp_path_factory, real_data_dir, baseline_config, fmnist) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("early")
    config = with_overrides(baseline_config, {"name": "early", "train.early_stopping": 1, "train.optimizer.lr": 0.003})
    save_config(config, root / "early.yaml")
    runs = {}
    for engine in ("keras", "lightning"):
        runs[engine] = root / engine
        fmnist(
            "train",
            "--engine",
            engine,
            "--config",
            str(root / "early.yaml"),
            "--limit-train",
            "300",
            "--limit-test",
            "100",
            "--epochs",
            "8",
            "--batch-size",
            "32",
            "--run-dir",
            str(runs[engine]),
            "--data-dir",
            str(real_data_dir),
        )
    return runs


@pytest.mark.parametrize("engine", ["keras", "lightning"])
def test_early_stopping_cli_run_saves_the_best_epoch(early_stopped_runs, engine, real_data_dir):
    from fmnist.datasets import load_fashion_mnist
    from fmnist.rundir import read_metrics
    from fmnist.splits import make_splits
    from fmnist.training import load_training

    run_dir = early_stopped_runs[engine]
    rows = read_metrics(run_dir / "metrics.csv")
    result = json.loads((run_dir / "test_metrics.json").read_text())
    accuracies = [r["val_accuracy"] for r in rows]
    best = accuracies.index(max(accuracies))
    assert len(rows) < 8, "no early stop happened: the test needs one"
    assert result["epochs_trained"] == len(rows) and result["restored_epoch"] == best + 1
    assert len(rows) - 1 - best == 1  # patience 1: stopped one epoch after the best
    config = load_config(run_dir / "config.yaml")
    val = make_splits(load_fashion_mnist(real_data_dir), config).val
    logits = load_training(engine).predict(run_dir, val.images, config.train.eval_batch_size)
    assert float((logits.argmax(1) == val.labels).mean()) == pytest.approx(accuracies[best], abs=1e-6)
    assert not (run_dir / "checkpoints").exists()
