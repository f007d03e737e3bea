"""The training rules both engines share, each written once in the core: the metrics.csv row
(`fmnist.rundir.metrics_row`), the non-finite-loss stop (`fmnist.divergence`), early stopping
(`fmnist.early_stopping`) and the damaged-model-file check (`fmnist.rundir.check_model_archive`).

Per rule: the core's rule on its own, then each engine's adapter driven by hand (a small Keras
model, a stand-in Lightning trainer) with a spy on the core's one, which both must call."""

from __future__ import annotations

import json
import math
import types
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmnist import rundir
from fmnist import engines
from fmnist.divergence import Divergence, DivergenceWatch, TrainingDiverged
from fmnist.early_stopping import EarlyStoppingRule
from fmnist.errors import RunDirError


class Spy:
    """Wraps a function (or method) and records the arguments of every call."""

    def __init__(self, function: Any) -> None:
        self.function, self.calls = function, []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return self.function(*args, **kwargs)

    def __get__(self, obj: Any, owner: Any = None) -> Any:  # as a method: bound to the instance
        return self if obj is None else types.MethodType(self, obj)


def _keras_model(lr: float = 0.125):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    return model


def _lightning_trainer(epoch: int = 0, lr: float = 0.125, metrics: dict | None = None) -> types.SimpleNamespace:
    """What the callbacks read from a Lightning Trainer."""
    return types.SimpleNamespace(
        current_epoch=epoch,
        should_stop=False,
        is_global_zero=True,
        callback_metrics=metrics or {},
        optimizers=[types.SimpleNamespace(param_groups=[{"lr": lr}])],
    )


# --- the metrics.csv row ------------------------------------------------------------------------


def test_the_metrics_row_is_in_the_columns_order_and_counts_epochs_from_1():
    row = rundir.metrics_row(
        0,
        train_loss=np.float32(0.5),
        train_accuracy=0.75,
        val_loss=np.array(0.25, dtype=np.float32),
        val_accuracy=0.875,
        lr=np.float32(0.001),
        seconds=2.5,
    )
    assert tuple(row) == rundir.METRICS_COLUMNS
    assert row["epoch"] == 1 and isinstance(row["epoch"], int)  # written "1", not "1.0"
    assert all(type(row[c]) is float for c in rundir.METRICS_COLUMNS[1:])
    assert row["lr"] == float(np.float32(0.001)) and row["val_loss"] == 0.25
    assert rundir.metrics_row(14, **{c: 0.0 for c in rundir.METRICS_COLUMNS[1:]})["epoch"] == 15


def test_both_engines_report_the_row_through_the_core(monkeypatch):
    import torch

    from keras_model.callbacks import EpochReport as KerasEpochReport
    from lightning_model.callbacks import EpochReport as LightningEpochReport

    spy = Spy(rundir.metrics_row)
    monkeypatch.setattr(rundir, "metrics_row", spy)
    values = {"train_loss": 0.5, "train_accuracy": 0.75, "val_loss": 0.25, "val_accuracy": 0.875}

    keras_rows: list[dict[str, float]] = []
    keras_report = KerasEpochReport(keras_rows.append)
    keras_report.set_model(_keras_model(lr=0.125))
    keras_report.on_epoch_begin(2)
    logs = {"loss": 0.5, "accuracy": 0.75, "val_loss": 0.25, "val_accuracy": 0.875}
    keras_report.on_epoch_end(2, logs)

    lightning_rows: list[dict[str, float]] = []
    lightning_report = LightningEpochReport(lightning_rows.append)
    metrics = {
        "train/loss": torch.tensor(0.5),
        "train/accuracy": torch.tensor(0.75),
        "val/loss": torch.tensor(0.25),
        "val/accuracy": torch.tensor(0.875),
    }
    trainer = _lightning_trainer(epoch=2, lr=0.125, metrics=metrics)
    lightning_report.on_train_epoch_start(trainer, None)
    lightning_report.on_train_batch_start(trainer, None, None, 0)
    lightning_report.on_train_epoch_end(trainer, None)

    assert len(spy.calls) == 2 and [args[0] for args, _ in spy.calls] == [2, 2]
    for rows in (keras_rows, lightning_rows):
        assert len(rows) == 1 and tuple(rows[0]) == rundir.METRICS_COLUMNS
        assert {k: v for k, v in rows[0].items() if k != "seconds"} == {"epoch": 3, **values, "lr": 0.125}


# --- the non-finite-loss stop -------------------------------------------------------------------


def test_the_watch_keeps_the_first_non_finite_loss_only():
    watch = DivergenceWatch()
    rates = iter([0.5, 0.25])
    assert not watch.check(0, 0, 2.0, lambda: next(rates))
    assert not watch.check(0, 1, np.float32(1.5), lambda: next(rates))  # finite: the rate is not read
    assert watch.check(1, 4, float("inf"), lambda: next(rates))
    assert watch.diverged == Divergence(epoch=2, step=5, loss=float("inf"), lr=0.5)
    assert not watch.check(1, 5, float("nan"), lambda: next(rates))  # later ones change nothing
    assert watch.diverged == Divergence(2, 5, float("inf"), 0.5)
    with pytest.raises(TrainingDiverged) as caught:
        watch.raise_if_diverged()
    assert str(caught.value) == (
        "training diverged: the loss became inf at epoch 2, step 5 (learning rate 0.5);"
        " lower the learning rate (--lr) and train again"
    )
    DivergenceWatch().raise_if_diverged()  # a finite run ends normally


def test_both_engines_stop_on_a_non_finite_loss_through_the_core(monkeypatch):
    import torch

    from keras_model.callbacks import StopOnNonFinite as KerasStop
    from lightning_model.callbacks import StopOnNonFinite as LightningStop

    spy = Spy(DivergenceWatch.check)
    monkeypatch.setattr(DivergenceWatch, "check", spy)
    losses = [1.0, float("nan"), float("inf")]

    model = _keras_model(lr=0.125)
    keras_stop = KerasStop()
    keras_stop.set_model(model)
    keras_stop.on_epoch_begin(1)
    for batch, loss in enumerate(losses):
        keras_stop.on_train_batch_end(batch, {"loss": loss})
    assert model.stop_training

    lightning_stop = LightningStop()
    trainer = _lightning_trainer(epoch=1, lr=0.125)
    for batch, loss in enumerate(losses):
        lightning_stop.on_train_batch_start(trainer, None, None, batch)
        lightning_stop.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss)}, None, batch)
    assert trainer.should_stop

    assert len(spy.calls) == 2 * len(losses)
    for watch in (keras_stop.watch, lightning_stop.watch):
        d = watch.diverged
        assert (d.epoch, d.step, d.lr) == (2, 2, 0.125) and math.isnan(d.loss)


# --- early stopping -----------------------------------------------------------------------------

SEQUENCES = [  # validation accuracies per epoch
    [0.5, 0.625, 0.625, 0.5, 0.75, 0.75, 0.5, 0.875],
    [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
    [0.875, 0.75, 0.625, 0.5, 0.375],
    [0.25, 0.375, 0.5, 0.625, 0.75],
    [0.5, 0.4375, 0.5, 0.5625, 0.5, 0.5, 0.5, 0.5],
    # equal in float32, greater in float64: no improvement in Keras (ops.greater on float32)
    [0.1, 0.1 + 1e-12, 0.1 + 2e-12, 0.2],
]


def _rule_run(rule: EarlyStoppingRule, accuracies: list[float], first_epoch: int = 0) -> tuple[int, int]:
    """(epochs run, epoch whose weights end up restored) under the core's rule alone."""
    ran = first_epoch
    for epoch in range(first_epoch, len(accuracies)):
        rule.update(epoch, accuracies[epoch])
        ran = epoch + 1
        if rule.stopped:
            break
    return ran, rule.best_epoch


class _FakeKerasModel:
    """What early stopping touches in a Keras model: the weights (the epoch they are from) and stop_training."""

    def __init__(self) -> None:
        self.epoch_of_weights, self.stop_training = -1, False

    def get_weights(self) -> list[np.ndarray]:
        return [np.array(self.epoch_of_weights, dtype=np.float32)]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.epoch_of_weights = int(weights[0])


def _keras_run(callback: Any, accuracies: list[float]) -> tuple[int, int]:
    model = _FakeKerasModel()
    callback.set_model(model)
    callback.on_train_begin()
    ran = 0
    for epoch, accuracy in enumerate(accuracies):
        model.epoch_of_weights = epoch
        callback.on_epoch_end(epoch, {"val_accuracy": accuracy})
        ran = epoch + 1
        if model.stop_training:
            break
    callback.on_train_end()
    return ran, model.epoch_of_weights


def _lightning_run(callback: Any, accuracies: list[float]) -> tuple[int, int]:
    import torch

    module = types.SimpleNamespace(network=torch.nn.Linear(1, 1, bias=False))
    trainer = _lightning_trainer()
    callback.on_train_start(trainer, module)
    ran = 0
    for epoch, accuracy in enumerate(accuracies):
        module.network.weight.data.fill_(epoch)
        trainer.current_epoch = epoch
        trainer.callback_metrics = {"val/accuracy": torch.tensor(accuracy, dtype=torch.float64)}
        callback.on_train_epoch_end(trainer, module)
        ran = epoch + 1
        if trainer.should_stop:
            break
    callback.on_train_end(trainer, module)
    return ran, int(module.network.weight.item())


def test_a_strictly_greater_accuracy_is_a_new_best_and_patience_counts_the_others():
    rule = EarlyStoppingRule(patience=2)
    assert rule.update(0, 0.5) == (True, False)  # the first value always is
    assert rule.update(1, 0.5) == (False, False)  # equal: no improvement, one epoch waited
    assert rule.update(2, 0.625) == (True, False)
    assert rule.update(3, 0.625) == (False, False)
    assert rule.update(4, 0.25) == (False, True)  # the second epoch without a new best stops
    assert (rule.best, rule.best_epoch, rule.stopped_epoch, rule.wait) == (0.625, 2, 4, 2)


def test_no_validation_changes_nothing_and_no_stop_after_the_first_epoch():
    rule = EarlyStoppingRule(patience=1)
    assert rule.update(0, None) == (False, False) and rule.best is None and rule.wait == 0
    rule.load_state_dict({"wait": 0, "stopped_epoch": 0, "best_epoch": 0, "best": 0.9})
    assert rule.update(0, 0.5) == (False, False)  # patience reached, but Keras never stops at epoch 0
    assert rule.update(1, 0.5) == (False, True)


def test_without_a_stop_the_best_epoch_is_still_the_one_restored():
    rule = EarlyStoppingRule(patience=3)
    assert _rule_run(rule, [0.5, 0.75, 0.625, 0.625]) == (4, 1)
    assert not rule.stopped


@pytest.mark.parametrize("patience", [1, 2, 3])
@pytest.mark.parametrize("accuracies", SEQUENCES)
def test_the_rule_decides_as_keras_own_early_stopping(accuracies, patience):
    """The reference: keras.callbacks.EarlyStopping itself, as the Keras backend used it."""
    import keras

    reference = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True
    )
    assert _rule_run(EarlyStoppingRule(patience), accuracies) == _keras_run(reference, accuracies)


@pytest.mark.parametrize("cut", range(1, 8))
def test_a_rule_resumed_from_its_state_decides_as_an_uninterrupted_one(cut):
    accuracies, patience = SEQUENCES[0], 2
    straight = EarlyStoppingRule(patience)
    expected = _rule_run(straight, accuracies)
    first = EarlyStoppingRule(patience)
    ran, _ = _rule_run(first, accuracies[:cut])
    state = json.loads(json.dumps(first.state_dict()))  # plain numbers: any file format keeps them
    resumed = EarlyStoppingRule(patience)
    resumed.load_state_dict(state)
    result = (ran, resumed.best_epoch) if resumed.stopped else _rule_run(resumed, accuracies, first_epoch=ran)
    assert result == expected and resumed.state_dict() == straight.state_dict()


@pytest.mark.parametrize("accuracies", SEQUENCES)
def test_both_engines_stop_early_through_the_core(monkeypatch, tmp_path, accuracies):
    from keras_model.callbacks import EarlyStoppingOnValAccuracy as KerasStopper
    from lightning_model.callbacks import EarlyStoppingOnValAccuracy as LightningStopper

    patience = 2
    expected = _rule_run(EarlyStoppingRule(patience), accuracies)
    spy = Spy(EarlyStoppingRule.update)
    monkeypatch.setattr(EarlyStoppingRule, "update", spy)

    keras_stopper = KerasStopper(patience, tmp_path)
    assert _keras_run(keras_stopper, accuracies) == expected
    keras_calls = [(args[1], float(args[2])) for args, _ in spy.calls]
    spy.calls.clear()
    lightning_stopper = LightningStopper(patience)
    assert _lightning_run(lightning_stopper, accuracies) == expected
    lightning_calls = [(args[1], float(args[2])) for args, _ in spy.calls]

    assert keras_calls == lightning_calls == [(e, a) for e, a in enumerate(accuracies[: expected[0]])]
    # The state each keeps for --resume is the core's (Keras: a file; Lightning: the checkpoint).
    resumed = KerasStopper(patience, tmp_path)
    resumed.resume(expected[0])
    lightning_state = lightning_stopper.state_dict()
    assert resumed.rule.state_dict() == keras_stopper.rule.state_dict()
    assert {k: v for k, v in lightning_state.items() if k != "best_weights"} == keras_stopper.rule.state_dict()


# --- the damaged-model-file check ---------------------------------------------------------------


def test_a_file_that_is_no_zip_archive_is_refused_in_one_line(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"this is not a model\n")
    with pytest.raises(RunDirError) as caught:
        rundir.check_model_archive(path, ".keras file")
    assert str(caught.value) == f"{path} is not a valid .keras file (truncated or corrupted); train the run again"
    with zipfile.ZipFile(tmp_path / "good.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    rundir.check_model_archive(tmp_path / "good.keras", ".keras file")
    rundir.check_model_archive(tmp_path / "missing.keras", ".keras file")  # left to the framework's message
    rundir.check_model_archive(tmp_path, ".keras file")  # not a file either


def _damaged_run(tmp_path: Path, engine: str) -> Path:
    run_dir = tmp_path / engine
    (run_dir / rundir.CHECKPOINT_DIR).mkdir(parents=True)
    (run_dir / engines.engine(engine).model_file).write_bytes(b"\x00" * 100)
    return run_dir


def test_both_engines_refuse_a_damaged_model_file_through_the_core(monkeypatch, tmp_path):
    from keras_model.training import load_model
    from lightning_model.training import completed_epochs, load_module

    spy = Spy(rundir.check_model_archive)
    monkeypatch.setattr(rundir, "check_model_archive", spy)

    keras_run = _damaged_run(tmp_path, "keras")
    with pytest.raises(RunDirError, match=r"is not a valid \.keras file \(truncated or corrupted\)"):
        load_model(keras_run)
    lightning_run = _damaged_run(tmp_path, "lightning")
    with pytest.raises(RunDirError, match="is not a valid Lightning checkpoint \\(truncated or corrupted\\)"):
        load_module(lightning_run)
    last = lightning_run / rundir.CHECKPOINT_DIR / "last.ckpt"  # the checkpoint --resume reads
    last.write_bytes(b"cut short")
    with pytest.raises(RunDirError, match="is not a valid checkpoint \\(truncated or corrupted\\)"):
        completed_epochs(lightning_run)

    assert [(Path(args[0]), args[1]) for args, _ in spy.calls] == [
        (keras_run / "model.keras", ".keras file"),
        (lightning_run / "model.ckpt", "Lightning checkpoint"),
        (last, "checkpoint"),
    ]
