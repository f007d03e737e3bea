"""One training as a job (`fmnist.job`), as `fmnist compare`'s executors start it in a fresh
process: the layer that owns training (`fmnist.training`) answers it, so a tool never calls up
into the command. The request holds the resolved config (overrides and seed applied), so the job
needs no flags of the command's; its folder is the run directory:

    {"job": "train", "engine": ENGINE, "config": {...}, "overwrite": false}
    {"job": "resume"}

The data come from FMNIST_DATA_DIR, which the executor sets on the host that trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _report(result: Any) -> None:
    from fmnist.training import format_summary

    if result is not None:  # None: an extra process of a multi-process training
        print(format_summary(result), flush=True)


def train(request: dict[str, Any], run_dir: Path) -> None:
    from fmnist.config import config_from_dict
    from fmnist.training import train_run

    config = config_from_dict(request["config"])
    _report(train_run(request["engine"], config, run_dir, overwrite=request.get("overwrite", False)))


def resume(request: dict[str, Any], run_dir: Path) -> None:
    from fmnist.training import resume_run

    _report(resume_run(run_dir))
