"""The proofs that a converted run (convert.conversion) goes on as the original would, beyond the
checks every conversion makes: its next training steps against the original's own, and the
states of a round trip. Used by tests/test_convert.py and docs/results/convert-*/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parity.tolerance import compare_lockstep
from fmnist import rundir
from fmnist.config import load_config
from fmnist.datasets import load_fashion_mnist
from fmnist.engine_job import call, run_jobs
from fmnist.run_state import differences, epoch_batches
from fmnist.splits import make_splits, num_batches

DTYPES = ("float32", "float64")


def continuation(original: Path, converted: Path, steps: int = 10, data_dir: str | None = None) -> dict[str, Any]:
    """The next `steps` training steps of both runs, each continued by its own engine from its own
    files (`RunState.continue_steps`: the batches of the epoch after the last finished one), in
    float32 and float64, judged by `fmnist parity`'s lockstep rule: per step, the float32 losses'
    relative difference within 1e-5 or twice either engine's own float32 rounding against its
    float64 run. Dropout masks are each framework's own: meaningful on a config without dropout.
    Returns compare_lockstep's loss summary, keyed "original" and "converted"."""
    original, converted = Path(original), Path(converted)
    config = load_config(original / rundir.CONFIG_FILE)
    train = make_splits(load_fashion_mnist(data_dir), config).train
    per_epoch = num_batches(len(train), config.train.batch_size)
    epoch = rundir.read_json(converted / rundir.RUN_INFO_FILE)["converted_from"]["epochs"]
    images, labels = epoch_batches(config, train, epoch, steps)
    runs = {"original": original, "converted": converted}

    def calls(run: Path) -> list[dict[str, Any]]:
        kwargs = {"images": images, "labels": labels, "steps_per_epoch": per_epoch}
        return [call("continue_steps", run_dir=str(run), dtype=d, **kwargs) for d in DTYPES]

    answers = run_jobs([(rundir.engine_named_by(run), calls(run)) for run in runs.values()])
    low, high = (
        {name: {"loss": a["results"][i]["loss"], "grads": {}, "running": {}} for name, a in zip(runs, answers)}
        for i in range(len(DTYPES))
    )
    return {"steps": steps, "epoch": epoch + 1, **compare_lockstep(low, high)["loss"]}


def round_trip(original: Path, returned: Path) -> dict[str, Any]:
    """A run and the same run carried away and back, both read by their (the same) engine:
    `fmnist.run_state.differences` of the two states, and the step count."""
    engine = rundir.engine_named_by(original)
    a, b = run_jobs([(engine, [call("read_state", run_dir=str(original)), call("read_state", run_dir=str(returned))])])[
        0
    ]["results"]
    return {**differences(a, b), "steps": a["steps"], "epochs": a["epochs"], "optimizer": a["optimizer"] is not None}
