"""A `pytorch` run's training state (`fmnist.capabilities.RunState`): a finished run's model.pt
(network, and the loop's optimizer and schedule since it keeps them), or the epoch checkpoint
checkpoints/last.pt (network, loop, epochs done), read into the shared form (`fmnist.run_state`)
and written back as `pytorch_model.checkpoint` writes them, so `train(resume=True)` and
`predict` take what is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fmnist import rundir
from fmnist.config import Config, config_to_dict, load_config
from fmnist.errors import RunDirError
from fmnist.run_state import finished_epochs, make_state
from pytorch_model import checkpoint
from torch_blocks import state as torch_state


def _parts(run_dir: Path) -> tuple[Config, bool, int, dict[str, Any], dict[str, Any] | None]:
    """(config, finished, epochs, network state dict, loop state or None) of a run's files."""
    run_dir = Path(run_dir)
    config = load_config(run_dir / rundir.CONFIG_FILE)
    if (run_dir / rundir.TEST_METRICS_FILE).is_file():
        saved = checkpoint.load_model_file(run_dir)
        return config, True, finished_epochs(run_dir), saved["network"], saved.get("loop")
    epoch = checkpoint.load_epoch(run_dir)
    if epoch is None:
        raise RunDirError(
            f"{run_dir} holds neither a finished model nor an epoch checkpoint ({checkpoint.CHECKPOINT_FILE}):"
            " nothing to carry"
        )
    return config, False, epoch["completed_epochs"], epoch["network"], epoch["loop"]


def read_state(run_dir: str) -> dict[str, Any]:
    config, finished, epochs, network, loop = _parts(Path(run_dir))
    weights, moments, steps = torch_state.shared_parts(config, network, loop["optimizer"] if loop else None)
    return make_state(
        engine=rundir.engine_named_by(run_dir),
        config=config_to_dict(config),
        finished=finished,
        epochs=epochs,
        steps=steps,
        weights=weights,
        optimizer=moments,
    )


def write_state(config: Config, state: dict[str, Any], run_dir: str, finished: bool) -> None:
    network = torch_state.network_with(config, state["weights"])
    optimizer, schedule = torch_state.optimizer_at(config, network, state, state["steps_per_epoch"])
    loop = {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}
    if finished:
        checkpoint.save_model(Path(run_dir), config, network, loop)
    else:
        checkpoint.save_epoch(Path(run_dir), state["epochs"], network, loop, None)


def continue_steps(
    run_dir: str, images: list[np.ndarray], labels: list[np.ndarray], steps_per_epoch: int, dtype: str
) -> dict[str, Any]:
    config, _, _, network, loop = _parts(Path(run_dir))
    if loop is None:
        raise RunDirError(f"{run_dir}'s {checkpoint.MODEL_FILE} keeps no optimizer state to continue from")
    return torch_state.continue_steps(config, network, loop, images, labels, steps_per_epoch, dtype)
