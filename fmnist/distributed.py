"""Which process this is, when one training runs in several processes.

Lightning's `ddp` strategy starts the extra processes by running the same command line again
(with LOCAL_RANK set); torchrun and SLURM start every process themselves. All of them train,
but only the first (global rank 0) may write the run directory, print results, or touch the
metrics and TensorBoard files. No framework import here: the launchers' environment variables
say everything.
"""

from __future__ import annotations

import os
from pathlib import Path

from fmnist.config import TrainConfig
from fmnist.engines import engine
from fmnist.errors import ConfigError

# Set by the first process before its framework launches the others, so that they find the
# same run directory even when its name was made from the clock.
RUN_DIR_ENV = "FMNIST_SHARED_RUN_DIR"


def check_strategy(name: str, train: TrainConfig) -> None:
    """Refuse a strategy, device or machine count the engine does not train with (its
    declaration says), before the run directory is made."""
    why = engine(name).check_training(train.strategy, train.devices, train.num_nodes)
    if why:
        raise ConfigError(why)


def _int_env(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else None


def is_primary() -> bool:
    """True in a single-process run and in the process of global rank 0."""
    rank = _int_env("RANK")  # torchrun, and Lightning's own multi-node launches
    if rank is not None:
        return rank == 0
    if (_int_env("SLURM_NTASKS") or 1) > 1:  # srun starts one task per device
        return (_int_env("SLURM_PROCID") or 0) == 0
    return (_int_env("NODE_RANK") or 0) == 0 and (_int_env("LOCAL_RANK") or 0) == 0


def share_run_dir(run_dir: Path) -> None:
    """Called by the first process: processes it launches later inherit the variable."""
    os.environ[RUN_DIR_ENV] = str(run_dir)


def shared_run_dir() -> Path | None:
    """In a launched process: the run directory the first process chose."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def split_batch(indices, parts: int, rank: int):
    """This rank's share of one global batch: contiguous, sizes differing by at most one, so the
    devices together see the batch exactly once (no padding, no duplicates)."""
    size, extra = divmod(len(indices), parts)
    start = rank * size + min(rank, extra)
    return indices[start : start + size + (1 if rank < extra else 0)]
