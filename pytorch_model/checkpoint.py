"""The `pytorch` engine's two files: the checkpoint of the last finished epoch (`--resume`) and the
finished run's model (`model.pt`), both `torch.save` dicts of tensors and plain numbers, read back
with `weights_only=True` (`torch_blocks.checkpoint`), and written atomically with Ctrl-C held
back (`fmnist.interrupts.sigint_held`): a kill or an interrupt during a write leaves the previous
file whole.

The checkpoint holds everything an uninterrupted training would still have in memory: the weights
(batch-norm statistics included), the optimizer's moments and step counts, the schedule's
position, the epochs done (so the batch order resumes at the next epoch's permutation; dropout is
reseeded from (seed, epoch) at each epoch's start, `torch_blocks.plain_loop`), and early stopping's
count with its best weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fmnist import rundir
from fmnist.config import Config, config_from_dict, config_to_dict
from fmnist.errors import RunDirError, reason as error_reason
from fmnist.interrupts import sigint_held
from torch_blocks.checkpoint import load_checkpoint

MODEL_FILE = "model.pt"  # (pytorch_model.engine)
CHECKPOINT_FILE = "last.pt"


def checkpoint_path(run_dir: Path) -> Path:
    return Path(run_dir) / rundir.CHECKPOINT_DIR / CHECKPOINT_FILE


def save(path: Path, state: dict[str, Any]) -> None:
    """`state` to `path`, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sigint_held(), rundir.atomic_path(path) as tmp:
        torch.save(state, tmp)


def _cpu(tree: Any) -> Any:
    """Tensors moved to the CPU, so a checkpoint written on a GPU loads anywhere."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu()
    if isinstance(tree, dict):
        return {k: _cpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_cpu(v) for v in tree)
    return tree


def save_epoch(
    run_dir: Path, completed_epochs: int, network: torch.nn.Module, loop: dict, stopping: dict | None
) -> None:
    """The checkpoint after `completed_epochs` epochs: weights, the loop's state (optimizer and
    schedule), early stopping's state (None: no early stopping)."""
    state = {
        "completed_epochs": completed_epochs,
        "network": network.state_dict(),
        "loop": loop,
        "early_stopping": stopping,
    }
    save(checkpoint_path(run_dir), _cpu(state))


def load_epoch(run_dir: Path) -> dict[str, Any] | None:
    """The last finished epoch's checkpoint (None: there is none); a one-line RunDirError for one
    that is damaged, planted, or lacks a part a resume needs."""
    path = checkpoint_path(run_dir)
    if not path.exists():
        return None
    state = load_checkpoint(path)
    missing = {"completed_epochs", "network", "loop"} - set(state)
    if missing:
        raise RunDirError(f"cannot read the checkpoint {path}: it lacks {', '.join(sorted(missing))}")
    try:
        state["completed_epochs"] = int(state["completed_epochs"])
    except (TypeError, ValueError) as exc:
        raise RunDirError(f"cannot read the checkpoint {path}: no epoch counter ({error_reason(exc)})") from None
    return state


def save_model(run_dir: Path, config: Config, network: torch.nn.Module, loop: dict | None = None) -> None:
    """model.pt: the config (as a dict) and the trained weights, all that rebuilding the network and
    using it needs; and the loop's state (optimizer and schedule) at the end, as Keras' model.keras
    and Lightning's model.ckpt keep theirs, so the run carries its optimizer to another engine
    (`fmnist convert`). A model.pt written before it kept the loop has none."""
    state = {"config": config_to_dict(config), "network": network.state_dict()}
    save(Path(run_dir) / MODEL_FILE, _cpu({**state, **({"loop": loop} if loop is not None else {})}))


def load_model(run_dir: Path) -> tuple[Config, dict[str, torch.Tensor]]:
    """model.pt's config and weights; a one-line RunDirError for a damaged or foreign file."""
    state = load_model_file(run_dir)
    try:
        return config_from_dict(state["config"]), state["network"]
    except Exception as exc:  # a dict of other keys, or a config this version cannot read
        raise RunDirError(f"cannot load the PyTorch model {Path(run_dir) / MODEL_FILE}: {error_reason(exc)}") from None


def load_model_file(run_dir: Path) -> dict[str, Any]:
    """model.pt as saved (config, network, and the loop where it kept one)."""
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise RunDirError(f"{run_dir} holds no {MODEL_FILE}: is it a finished run of the pytorch engine?")
    return load_checkpoint(path, "PyTorch model")
