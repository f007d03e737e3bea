"""Reading torch checkpoints without running what they hold.

`torch.load` unpickles, and an unrestricted unpickler runs whatever code a file names: a run
directory someone sends you must be safe to resume, evaluate or predict with. Every checkpoint
here is read with `weights_only=True`, which allows tensors, plain containers and numbers (all
a checkpoint of this project's torch engines holds: weights, optimizer and schedule state, loop
counters, callbacks' or early stopping's state, the config as a dict) and refuses anything else before it is built.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from fmnist import rundir
from fmnist.errors import RunDirError, reason as error_reason


def refusal(path: Path) -> str:
    return f"{path} holds code or objects a checkpoint never needs; refusing to load it (weights_only)"


def load_checkpoint(path: Path, what: str = "checkpoint") -> dict[str, Any]:
    """The checkpoint at `path` as a dict, loaded with `weights_only=True`; a one-line RunDirError
    for a damaged file, or for one that would need the full unpickler (a planted payload)."""
    path = Path(path)
    rundir.check_model_archive(path, what)  # torch.save writes a zip archive
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # what weights_only raises for a global it does not allow
        raise RunDirError(refusal(path)) from None
    except Exception as exc:  # a truncated or foreign file fails deep inside torch.load
        raise RunDirError(f"cannot read the {what} {path}: {error_reason(exc)}") from None
    if not isinstance(checkpoint, dict):
        raise RunDirError(f"{path} is not a {what} of fmnist (it holds a {type(checkpoint).__name__}, not a dict)")
    return checkpoint
