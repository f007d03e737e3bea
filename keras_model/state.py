"""A Keras run's training state (`fmnist.capabilities.RunState`), for every Keras engine: a
finished run's model.keras (saved compiled: weights and the optimizer's variables) or the epoch
checkpoint BackupAndRestore keeps (checkpoints/latest.weights.h5, the same two, and
training_metadata.json, the epochs done), read into the shared form (`fmnist.run_state`) and
written back by Keras itself (`Model.save`, and the run's own `WholeBackup` callback), so
`keras.saving.load_model` and `train(resume=True)` take what is written.

Both files are read as BackupAndRestore reads its checkpoint: the config's model compiled, its
optimizer built, `Model.load_weights` (which takes a .keras file too). Adam's (and AdamW's) state
is the step count `iterations` and a momentum and a velocity per trainable variable, in Keras'
layout: moved to the shared one as the weights are (`fmnist.weight_layout`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from fmnist import rundir
from fmnist.config import Config, config_to_dict, load_config, with_overrides
from fmnist.errors import RunDirError, reason as error_reason
from fmnist.run_state import ADAM_FAMILY, finished_epochs, make_state
from fmnist.schedules import lr_at_step
from fmnist.weight_layout import keras_to_torch_arrays, torch_to_keras_arrays
from keras_model import parity
from keras_model.callbacks import ScheduledLearningRate, WholeBackup
from keras_model.model import build_model, set_shared_weights, shared_weights
from keras_model.training import MODEL_FILE, compile_model, completed_epochs

CHECKPOINT_WEIGHTS = "latest.weights.h5"  # BackupAndRestore's file in checkpoints/


def _state_file(run_dir: Path) -> tuple[Path, bool, int]:
    """(the file holding the state, finished, epochs done)."""
    if (run_dir / rundir.TEST_METRICS_FILE).is_file():
        return run_dir / MODEL_FILE, True, finished_epochs(run_dir)
    path = run_dir / rundir.CHECKPOINT_DIR / CHECKPOINT_WEIGHTS
    if not path.is_file():
        raise RunDirError(
            f"{run_dir} holds neither a finished model nor an epoch checkpoint ({path.name}): nothing to carry"
        )
    return path, False, completed_epochs(run_dir)


def _compiled(config: Config) -> keras.Model:
    """The config's model compiled with its optimizer built: what a file's weights and optimizer
    variables load into (as BackupAndRestore builds it before it loads)."""
    model = compile_model(build_model(config), config)
    model.optimizer.build(model.trainable_variables)
    return model


def _trained(config: Config, path: Path) -> keras.Model:
    model = _compiled(config)
    try:
        model.load_weights(path)
    except Exception as exc:  # a damaged or foreign file fails deep inside the h5 reader
        raise RunDirError(f"cannot read {path}: {error_reason(exc)}") from None
    return model


def _slots(model: keras.Model) -> dict[str, Callable[[keras.Variable], keras.Variable]]:
    """Adam's momentum and velocity of a trainable variable, by the shared layout's names m and v."""
    opt = model.optimizer
    return {
        "m": lambda w: opt._momentums[opt._get_variable_index(w)],
        "v": lambda w: opt._velocities[opt._get_variable_index(w)],
    }


def _moments(config: Config, model: keras.Model) -> dict[str, Any] | None:
    if config.train.optimizer.name not in ADAM_FAMILY:
        return None
    out: dict[str, Any] = {"name": config.train.optimizer.name}
    for key, slot in _slots(model).items():
        per_layer = {
            layer.name: [keras.ops.convert_to_numpy(slot(w)) for w in layer.trainable_weights] for layer in model.layers
        }
        out[key] = keras_to_torch_arrays(config, per_layer)
    return out


def read_state(run_dir: str) -> dict[str, Any]:
    run_dir = Path(run_dir)
    config = load_config(run_dir / rundir.CONFIG_FILE)
    path, finished, epochs = _state_file(run_dir)
    model = _trained(config, path)
    return make_state(
        engine=rundir.engine_named_by(run_dir),
        config=config_to_dict(config),
        finished=finished,
        epochs=epochs,
        steps=int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        weights=shared_weights(config, model),
        optimizer=_moments(config, model),
    )


def _load_state(config: Config, model: keras.Model, state: dict[str, Any]) -> None:
    """The state's weights and optimizer variables into a compiled model with its optimizer built."""
    set_shared_weights(config, model, state["weights"])
    opt, moments = model.optimizer, state["optimizer"]
    if moments is None:  # a fresh optimizer: no steps, no moments
        return
    for key, slot in _slots(model).items():
        per_layer = torch_to_keras_arrays(config, moments[key])
        for layer in model.layers:
            for w, value in zip(layer.trainable_weights, per_layer.get(layer.name, [])):
                slot(w).assign(value.astype(w.dtype))
    opt.iterations.assign(state["steps"])
    # The rate of the last step taken, as the optimizer of a training holds it (ScheduledLearningRate
    # sets the next one before the next step).
    opt.learning_rate = lr_at_step(config.train, max(state["steps"] - 1, 0), state["steps_per_epoch"])


def write_state(config: Config, state: dict[str, Any], run_dir: str, finished: bool) -> None:
    model = _compiled(config)
    _load_state(config, model, state)
    if finished:
        with rundir.atomic_path(Path(run_dir) / MODEL_FILE) as tmp:
            model.save(tmp)
        return
    # The run's own checkpoint callback writes it, as at the end of the epoch it records.
    backup = WholeBackup(str(Path(run_dir) / rundir.CHECKPOINT_DIR), delete_checkpoint=False)
    backup.set_model(model)
    backup.on_epoch_end(state["epochs"] - 1)


def continue_steps(
    run_dir: str, images: list[np.ndarray], labels: list[np.ndarray], steps_per_epoch: int, dtype: str
) -> dict[str, Any]:
    """Loaded as BackupAndRestore loads a checkpoint, the rate set by the run's own
    ScheduledLearningRate at the epoch it resumes in, one `train_on_batch` per batch."""
    run_dir = Path(run_dir)
    config = with_overrides(load_config(run_dir / rundir.CONFIG_FILE), {"train.precision": "float32"})
    path, _, epochs = _state_file(run_dir)
    with parity.float_type(dtype):
        model = _trained(config, path)
        schedule = ScheduledLearningRate(config.train, steps_per_epoch)
        schedule.set_model(model)
        schedule.on_epoch_begin(epochs)
        losses = []
        for batch, (x, y) in enumerate(zip(images, labels)):
            schedule.on_train_batch_begin(batch)
            losses.append(float(model.train_on_batch(x.astype(dtype)[..., None], y.astype(np.int32))[0]))
    return {"loss": losses}
