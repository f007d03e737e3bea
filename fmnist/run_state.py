"""A run's training state in the one form every engine reads and writes
(`fmnist.capabilities.RunState`): what `fmnist convert` carries from one engine's files into
another's, so the run goes on there as it would have at home.

Numpy and plain numbers, weights and moments in the shared layout (`fmnist.weight_layout`):

- engine, config: the engine whose files it was read from, and the run's config (a dict);
- finished: read from a finished run's model file, else from its epoch checkpoint;
- epochs: epochs finished. The next epoch's batch order is `fmnist.splits.epoch_permutation(seed,
  epochs)`, as every resume assumes, and a per-epoch schedule stands there;
- steps: optimizer steps taken, one per batch: Adam's step count t (its bias correction) and where
  a per-step schedule stands (`fmnist.schedules.lr_at_step`);
- weights: the network's weights, batch-norm running statistics included;
- optimizer: {"name": "adam" or "adamw", "m": first moments, "v": second moments}, per parameter,
  or None where the files keep none (a model.pt written before it kept the optimizer).

A state handed to `RunState.write_state` also says `steps_per_epoch`, the batches of one epoch of
the run's data (the converter counts them): where a per-step schedule stands is epochs x that.

Keras and torch keep the same numbers under other names and shapes: Adam's moments are the same
update in both (Keras' Adam, and `torch_blocks.optim.KerasAdam` in the torch engines), AdamW's
decay is decoupled in both, and a batch norm's running mean and (biased) variance are the same
statistics whatever each framework calls its momentum.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fmnist import rundir
from fmnist.augment import augment_batch
from fmnist.config import Config
from fmnist.errors import FmnistError
from fmnist.splits import Split, batch_slices, epoch_permutation

#: The optimizers whose state is carried: Keras' Adam and AdamW, and KerasAdam in torch.
ADAM_FAMILY = ("adam", "adamw")


def make_state(
    *,
    engine: str,
    config: dict[str, Any],
    finished: bool,
    epochs: int,
    steps: int,
    weights: dict[str, np.ndarray],
    optimizer: dict[str, Any] | None,
) -> dict[str, Any]:
    """A state as `RunState.read_state` returns it (arrays float32)."""

    def f32(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}

    moments = None
    if optimizer is not None:
        moments = {"name": optimizer["name"], "m": f32(optimizer["m"]), "v": f32(optimizer["v"])}
    return {
        "engine": engine,
        "config": config,
        "finished": bool(finished),
        "epochs": int(epochs),
        "steps": int(steps),
        "weights": f32(weights),
        "optimizer": moments,
    }


def finished_epochs(run_dir: Path) -> int:
    """Epochs a finished run trained: its rows of metrics.csv (early stopping may end a run before
    `train.epochs`; a finished model file does not say)."""
    return len(rundir.read_metrics(Path(run_dir) / rundir.METRICS_FILE))


def check_carryable(config: Config, finished: bool) -> None:
    """Refuse, before any framework loads, a run whose state the engines keep in forms that do
    not map onto each other."""
    name = config.train.optimizer.name
    if name not in ADAM_FAMILY:
        raise FmnistError(
            f"the run trains with {name}, whose state is not carried between engines (Keras keeps SGD's"
            " momentum scaled by the learning rate, torch without it): only Adam and AdamW runs convert"
        )
    if not finished and config.train.early_stopping:
        raise FmnistError(
            "the run is unfinished and stops early (train.early_stopping): early stopping's count and best"
            " weights are not carried between engines; finish it with fmnist train --resume, then convert it"
        )


def check_consistent(state: dict[str, Any], steps_per_epoch: int) -> None:
    """The step count a run's files hold against its epochs: one optimizer step per batch of the
    shared order, so the two say the same thing, or the files are not what a run of this data
    writes (another data set, a damaged checkpoint)."""
    if state["epochs"] < 1:
        raise FmnistError("the run holds no finished epoch: nothing to carry (train it, or start it again)")
    expected = state["epochs"] * steps_per_epoch
    if state["optimizer"] is not None and state["steps"] != expected:
        raise FmnistError(
            f"the run's optimizer has taken {state['steps']} steps, where {state['epochs']} epochs of"
            f" {steps_per_epoch} batches make {expected}: its files do not match its data and config"
        )


def differences(written: dict[str, Any], read: dict[str, Any]) -> dict[str, Any]:
    """How far a state read back from files is from the state they were written from: the largest
    |difference| of the weights and of each moment, and whether the counters agree."""

    def largest(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
        if set(a) != set(b):
            raise FmnistError(f"the states hold different tensors: {sorted(set(a) ^ set(b))}")
        return max((float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a), default=0.0)

    out: dict[str, Any] = {"weights": largest(written["weights"], read["weights"])}
    both = written["optimizer"] is not None and read["optimizer"] is not None
    for moment in ("m", "v"):
        out[moment] = largest(written["optimizer"][moment], read["optimizer"][moment]) if both else None
    out["epochs_equal"] = written["epochs"] == read["epochs"]
    out["steps_equal"] = written["steps"] == read["steps"] or written["optimizer"] is None
    return out


def epoch_batches(config: Config, train: Split, epoch: int, count: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The first `count` training batches of `epoch` (from 0) in the shared order, augmented as
    every engine's training augments them: what a run resumed after `epoch` epochs trains on next."""
    order = epoch_permutation(len(train), config.seed, epoch)
    images, labels = [], []
    for b, part in enumerate(batch_slices(len(train), config.train.batch_size)[:count]):
        index = order[part]
        images.append(augment_batch(train.images[index], config.data.augment, config.seed, epoch, b))
        labels.append(train.labels[index])
    return images, labels
