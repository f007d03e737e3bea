"""Learning-rate schedules: the baseline's per-epoch values unchanged, warm-up, cosine and
one-cycle per step, the same rate per step for both engines, and the new config fields."""

from __future__ import annotations

import dataclasses
import math

import pytest

from fmnist.config import ConfigError, OptimizerConfig, ScheduleConfig, TrainConfig, config_from_dict, config_to_dict
from fmnist.schedules import lr_at_epoch, lr_at_step


def _train(epochs: int = 10, lr: float = 1e-3, **schedule) -> TrainConfig:
    return TrainConfig(epochs=epochs, optimizer=OptimizerConfig(lr=lr), schedule=ScheduleConfig(**schedule))


def _old_lr_at_epoch(train: TrainConfig, epoch: int) -> float:
    """fmnist.schedules.lr_at_epoch before per-step schedules, verbatim."""
    base, schedule = train.optimizer.lr, train.schedule
    if schedule.name == "constant":
        return base
    progress = epoch / max(train.epochs, 1)
    return schedule.min_lr + 0.5 * (base - schedule.min_lr) * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize("schedule", [{}, {"name": "cosine"}, {"name": "cosine", "min_lr": 1e-5}])
@pytest.mark.parametrize("epochs", [1, 3, 15])
def test_existing_configs_get_the_same_rates_bit_for_bit(schedule, epochs):
    train = _train(epochs, **schedule)
    for epoch in range(epochs + 1):
        assert lr_at_epoch(train, epoch) == _old_lr_at_epoch(train, epoch)
        for step in range(epoch * 7, epoch * 7 + 7):
            assert lr_at_step(train, step, 7) == _old_lr_at_epoch(train, epoch)


def test_baseline_config_is_unchanged(baseline_config):
    t = baseline_config.train
    assert t.schedule.per_step is False and t.schedule.warmup_epochs == 0.0
    assert t.label_smoothing == 0.0 and t.early_stopping == 0 and t.optimizer.weight_decay == 0.0
    assert baseline_config.data.augment.enabled is False
    assert [lr_at_epoch(t, e) for e in range(15)] == [_old_lr_at_epoch(t, e) for e in range(15)]


@pytest.mark.parametrize(
    "schedule",
    [
        {"name": "cosine", "warmup_epochs": 2},
        {"name": "constant", "warmup_epochs": 1},
        {"name": "onecycle", "peak_fraction": 0.25},
    ],
)
def test_per_epoch_mode_holds_each_epochs_rate_for_all_its_steps(schedule):
    train = _train(8, **schedule)
    assert [lr_at_step(train, s, 5) for s in range(40)] == [lr_at_epoch(train, s // 5) for s in range(40)]


def test_linear_warmup_then_the_decay_over_what_is_left():
    lr, spe = 1e-3, 10
    train = _train(5, lr, name="cosine", warmup_epochs=1, per_step=True, min_lr=1e-5)
    rates = [lr_at_step(train, s, spe) for s in range(5 * spe)]
    assert rates[:spe] == pytest.approx([lr * (k + 1) / (spe + 1) for k in range(spe)])
    assert rates[spe] == lr and all(a > b for a, b in zip(rates[spe:], rates[spe + 1 :]))
    assert rates[-1] == pytest.approx(1e-5 + 0.5 * (lr - 1e-5) * (1 + math.cos(math.pi * 39 / 40)))
    per_epoch = _train(5, lr, name="cosine", warmup_epochs=2)
    assert [lr_at_epoch(per_epoch, e) for e in range(3)] == pytest.approx([lr / 3, 2 * lr / 3, lr])
    # Fractions of an epoch count in steps per step, rounded half up to whole epochs per epoch.
    assert lr_at_step(_train(5, lr, warmup_epochs=0.5, per_step=True), 4, 10) == pytest.approx(lr * 5 / 6)
    assert lr_at_epoch(_train(5, lr, warmup_epochs=0.5), 0) == lr / 2


def test_cosine_per_step_meets_per_epoch_at_epoch_boundaries_and_its_endpoints():
    per_step, per_epoch = (_train(6, 2e-3, name="cosine", min_lr=1e-4, per_step=flag) for flag in (True, False))
    for epoch in range(6):
        assert lr_at_step(per_step, epoch * 9, 9) == pytest.approx(lr_at_epoch(per_epoch, epoch), rel=1e-12)
    assert lr_at_step(per_step, 0, 9) == 2e-3
    assert lr_at_step(per_step, 27, 9) == pytest.approx((2e-3 + 1e-4) / 2)  # halfway
    assert 1e-4 < lr_at_step(per_step, 53, 9) < 1e-4 + 2e-6


def test_onecycle_is_torchs_one_cycle_lr_step_for_step():
    torch = pytest.importorskip("torch")
    lr, epochs, spe = 4e-3, 5, 11
    train = _train(epochs, lr, name="onecycle", per_step=True, peak_fraction=0.3, start_factor=0.04, min_lr=1e-7)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    reference = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=lr,
        epochs=epochs,
        steps_per_epoch=spe,
        pct_start=0.3,
        div_factor=25.0,
        final_div_factor=(lr / 25.0) / 1e-7,
        anneal_strategy="cos",
        cycle_momentum=False,
    )
    ours = []
    for step in range(epochs * spe):
        assert lr_at_step(train, step, spe) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
        ours.append(lr_at_step(train, step, spe))
        optimizer.step()
        reference.step()
    peak = ours.index(max(ours))
    assert ours[0] == pytest.approx(lr * 0.04) and ours[-1] == pytest.approx(1e-7)
    assert ours[peak] == pytest.approx(lr, rel=1e-3)
    assert all(a < b for a, b in zip(ours[:peak], ours[1 : peak + 1]))
    assert all(a > b for a, b in zip(ours[peak:], ours[peak + 1 :]))


def test_keras_and_torch_set_the_same_rate_at_every_step():
    """The wiring both engines are to use: Keras' ScheduledLearningRate callback, torch's LambdaLR
    stepped every step over lr_at_step. Keras keeps the rate in a float32 variable."""
    import types

    import numpy as np
    import torch

    import keras
    from keras_model.callbacks import ScheduledLearningRate

    epochs, spe = 3, 4
    for schedule in [dict(name="cosine", warmup_epochs=1, per_step=True), dict(name="cosine")]:
        train = _train(epochs, 1e-3, **schedule)
        callback = ScheduledLearningRate(train, spe)
        callback.set_model(types.SimpleNamespace(optimizer=keras.optimizers.Adam(1e-3)))
        param = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([param], lr=1e-3)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at_step(train, s, spe) / 1e-3)
        for epoch in range(epochs):
            callback.on_epoch_begin(epoch)
            for batch in range(spe):
                callback.on_train_batch_begin(batch)
                keras_lr = float(keras.ops.convert_to_numpy(callback.model.optimizer.learning_rate))
                expected = lr_at_step(train, epoch * spe + batch, spe)
                assert keras_lr == np.float32(expected)
                assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12)
                optimizer.step()
                scheduler.step()


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"data": {"augment": {"flip": 1.5}}}, "data.augment.flip: value must be <= 1.0"),
        ({"data": {"augment": {"crop_padding": -1}}}, "data.augment.crop_padding: value must be >= 0"),
        ({"data": {"augment": {"erase_scale": [0.1]}}}, "data.augment.erase_scale: number of entries must be >= 2"),
        ({"data": {"augment": {"erase_scale": [0.3, 0.1]}}}, "data.augment.erase_scale: need 0 < low <= high <= 1"),
        ({"data": {"augment": {"erase_ratio": [0, 2]}}}, "data.augment.erase_ratio: need 0 < low <= high"),
        ({"data": {"augment": {"erase_value": 256}}}, "data.augment.erase_value: value must be <= 255"),
        ({"data": {"augment": {"fllip": 0.5}}}, "unknown key 'data.augment.fllip' (did you mean 'flip'?)"),
        ({"train": {"schedule": {"name": "linear"}}}, "allowed: 'constant', 'cosine', 'onecycle'"),
        ({"train": {"schedule": {"warmup_epochs": -1}}}, "train.schedule.warmup_epochs: value must be >= 0.0"),
        ({"train": {"schedule": {"name": "onecycle", "warmup_epochs": 1}}}, "onecycle has its own warm-up"),
        ({"train": {"schedule": {"per_step": "yes"}}}, "train.schedule.per_step: expected true or false"),
        ({"train": {"label_smoothing": 1.0}}, "train.label_smoothing: value must be < 1.0"),
        ({"train": {"early_stopping": -1}}, "train.early_stopping: value must be >= 0"),
        ({"train": {"optimizer": {"name": "adam", "weight_decay": 0.01}}}, "decoupled weight decay needs name 'adamw'"),
        ({"train": {"optimizer": {"name": "rmsprop"}}}, "allowed: 'adam', 'adamw', 'sgd'"),
    ],
)
def test_new_fields_are_validated(baseline_config, changes, expected):
    raw = config_to_dict(baseline_config)
    for section, values in changes.items():
        for key, value in values.items():
            if isinstance(value, dict):
                raw[section].setdefault(key, {}).update(value)
            else:
                raw[section][key] = value
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    assert expected in str(info.value)


def test_new_fields_load_and_round_trip(baseline_config):
    raw = config_to_dict(baseline_config)
    raw["data"]["augment"] = {"crop_padding": 2, "flip": 0.5, "erase": 0.5, "erase_scale": [0.02, 0.4]}
    raw["train"].update(label_smoothing=0.1, early_stopping=5)
    raw["train"]["optimizer"].update(name="adamw", weight_decay=0.05)
    raw["train"]["schedule"] = {"name": "onecycle", "per_step": True, "peak_fraction": 0.25}
    config = config_from_dict(raw)
    assert config.data.augment.erase_scale == (0.02, 0.4) and config.data.augment.enabled
    assert config.train.optimizer.weight_decay == 0.05 and config.train.schedule.name == "onecycle"
    assert config_from_dict(config_to_dict(config)) == config
    assert dataclasses.replace(config.train.schedule, name="cosine").warmup_epochs == 0.0
