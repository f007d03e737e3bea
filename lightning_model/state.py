"""A Lightning run's training state (`fmnist.capabilities.RunState`): a finished run's model.ckpt
or the epoch checkpoint checkpoints/last.ckpt, both what `Trainer.save_checkpoint` writes (the
module's state dict, the optimizer's and the LambdaLR's states, the loops' progress, the config
in the hyperparameters), read into the shared form (`fmnist.run_state`) and written back in the
same shape: `FashionClassifier.load_from_checkpoint` loads it and `Trainer.fit(ckpt_path=...)`
resumes from it, at the epoch and step it records.

The loops' progress comes from a Trainer's own loop objects, their counters set where a training
of that many epochs leaves them (`_loops`), so the checkpoint has the shape this Lightning writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from fmnist import rundir
from fmnist.config import Config, config_to_dict, load_config
from fmnist.errors import RunDirError
from fmnist.interrupts import sigint_held
from fmnist.run_state import finished_epochs, make_state
from lightning_model.module import FashionClassifier
from lightning_model.training import MODEL_FILE, checkpoint_path, completed_epochs, make_trainer
from torch_blocks import state as torch_state
from torch_blocks.checkpoint import load_checkpoint
from torch_blocks.network import load_shared_weights

PREFIX = "network."  # the module's state dict holds the network under its attribute name


def _parts(run_dir: Path) -> tuple[Config, bool, int, dict[str, Any]]:
    """(config, finished, epochs, the checkpoint) of a run's files."""
    run_dir = Path(run_dir)
    config = load_config(run_dir / rundir.CONFIG_FILE)
    if (run_dir / rundir.TEST_METRICS_FILE).is_file():
        return config, True, finished_epochs(run_dir), load_checkpoint(run_dir / MODEL_FILE, "Lightning checkpoint")
    path = checkpoint_path(run_dir)
    if not path.is_file():
        raise RunDirError(
            f"{run_dir} holds neither a finished model nor an epoch checkpoint ({path.name}): nothing to carry"
        )
    return config, False, completed_epochs(run_dir), load_checkpoint(path)


def _network_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k[len(PREFIX) :]: v for k, v in checkpoint.get("state_dict", {}).items() if k.startswith(PREFIX)}


def read_state(run_dir: str) -> dict[str, Any]:
    config, finished, epochs, checkpoint = _parts(Path(run_dir))
    optimizers = checkpoint.get("optimizer_states") or [None]
    weights, moments, steps = torch_state.shared_parts(config, _network_state(checkpoint), optimizers[0])
    return make_state(
        engine=rundir.engine_named_by(run_dir),
        config=config_to_dict(config),
        finished=finished,
        epochs=epochs,
        steps=steps,
        weights=weights,
        optimizer=moments,
    )


def _count(progress: Any, value: int) -> None:
    """Every counter of a Lightning progress tracker (ready, started, processed, completed: those it has)."""
    for field in ("ready", "started", "processed", "completed"):
        if hasattr(progress, field):
            setattr(progress, field, value)


def _loops(config: Config, epochs: int, steps_per_epoch: int, finished: bool) -> dict[str, Any]:
    """The loops' state after `epochs` epochs of `steps_per_epoch` steps, as Lightning saves it at
    the end of the last epoch (the epoch counted complete in model.ckpt, not yet in the epoch's own
    checkpoint, which is written inside it) and with the schedule stepped after every epoch or step."""
    trainer = make_trainer(config, None)
    fit = trainer.fit_loop
    steps = epochs * steps_per_epoch
    for tracker in (fit.epoch_progress.total, fit.epoch_progress.current):
        _count(tracker, epochs)
        tracker.completed = epochs if finished else epochs - 1
    batches = fit.epoch_loop.batch_progress
    _count(batches.total, steps)
    _count(batches.current, steps_per_epoch)
    batches.is_last_batch = True
    per_step = config.train.schedule.per_step
    _count(fit.epoch_loop.scheduler_progress.total, steps if per_step else epochs)
    _count(fit.epoch_loop.scheduler_progress.current, steps_per_epoch if per_step else 1)
    optimizer = fit.epoch_loop.automatic_optimization.optim_progress.optimizer
    for tracker in (optimizer.step, optimizer.zero_grad):
        _count(tracker.total, steps)
        _count(tracker.current, steps_per_epoch)
    fit.epoch_loop._batches_that_stepped = steps
    return {
        "fit_loop": fit.state_dict(),
        "validate_loop": trainer.validate_loop.state_dict(),
        "test_loop": trainer.test_loop.state_dict(),
        "predict_loop": trainer.predict_loop.state_dict(),
    }


def write_state(config: Config, state: dict[str, Any], run_dir: str, finished: bool) -> None:
    module = FashionClassifier.from_config(config)
    load_shared_weights(module.network, state["weights"], "float32")
    steps_per_epoch = state["steps_per_epoch"]
    optimizer, schedule = torch_state.optimizer_at(config, module.network, state, steps_per_epoch)
    epochs = state["epochs"]
    checkpoint = {
        "epoch": epochs if finished else epochs - 1,  # Lightning's epoch index, as its own files hold it
        "global_step": epochs * steps_per_epoch,
        "pytorch-lightning_version": L.__version__,
        "state_dict": module.state_dict(),
        "loops": _loops(config, epochs, steps_per_epoch, finished),
        "callbacks": {},
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [schedule.state_dict()],
        "hparams_name": None,
        "hyper_parameters": dict(module.hparams),
    }
    path = Path(run_dir) / MODEL_FILE if finished else checkpoint_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sigint_held(), rundir.atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def continue_steps(
    run_dir: str, images: list[np.ndarray], labels: list[np.ndarray], steps_per_epoch: int, dtype: str
) -> dict[str, Any]:
    config, _, _, checkpoint = _parts(Path(run_dir))
    loop = {"optimizer": checkpoint["optimizer_states"][0], "schedule": checkpoint["lr_schedulers"][0]}
    return torch_state.continue_steps(config, _network_state(checkpoint), loop, images, labels, steps_per_epoch, dtype)
