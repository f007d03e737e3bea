"""The small-data proofs of `fmnist convert` in docs/parity.md ("Carrying a run to another
engine"), as tests/test_convert.py makes them, with their figures written to continuation.json:
for Keras -> Lightning and Lightning -> Keras, a run of configs/batchnorm.yaml without dropout
(1,280 training images: an epoch is 10 steps of 128) stopped as Ctrl-C stops it after its first
epoch of two, converted, and
- its next 10 steps in the other engine against the original's own (compare.convert_checks.continuation);
- carried back, its state against the original's (the round trip of an interrupted run);
- both finished with `fmnist train --resume`: their second epochs' rows.

    FMNIST_DATA_DIR=... python docs/results/convert-2026-12-07/continuation.py WORK_DIR
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from compare.convert import convert_run
from compare.convert_checks import continuation, round_trip
from compare.parity_checks import without_dropout
from fmnist import rundir
from fmnist.config import load_config, save_config, with_overrides

HERE = Path(__file__).resolve().parent
#: `fmnist train` stopped at the end of epoch 2 before its row is written, as a Ctrl-C there stops
#: it: the run keeps epoch 1's checkpoint (tests/test_convert.py stops its runs the same way).
INTERRUPTED = """
import sys
from fmnist import epoch_reporter
report = epoch_reporter.EpochReporter.__call__
def stop(self, row):
    if len(self.rows) == 1:
        raise KeyboardInterrupt
    report(self, row)
epoch_reporter.EpochReporter.__call__ = stop
from fmnist_cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def fmnist(*args: str, interrupted: bool = False) -> None:
    command = [sys.executable, *(["-c", INTERRUPTED] if interrupted else ["-m", "fmnist_cli"]), *args]
    done = subprocess.run(command)
    assert done.returncode == (130 if interrupted else 0), done.returncode


def main(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    config = work / "batchnorm-no-dropout.yaml"
    overrides = {"data.limit_train": 1422, "data.limit_test": 500, "train.epochs": 2}
    save_config(without_dropout(with_overrides(load_config("batchnorm"), overrides)), config)
    figures = {"config": "configs/batchnorm.yaml without dropout, 1,280 training images, 2 epochs, stopped after 1"}
    for home, away in (("keras", "lightning"), ("lightning", "keras")):
        original = work / home
        fmnist(
            "train",
            "--engine",
            home,
            "--config",
            str(config),
            "--run-dir",
            str(original),
            "--threads",
            "1",
            interrupted=True,
        )
        converted, back = work / f"{home}-{away}", work / f"{home}-{away}-{home}"
        conversion = convert_run(original, away, out=converted)
        convert_run(converted, home, out=back)
        steps = continuation(original, converted)
        itself = work / f"{home}-itself"
        shutil.copytree(original, itself)
        for run in (itself, converted):
            fmnist("train", "--resume", str(run), "--threads", "1")
        rows = {
            name: rundir.read_metrics(run / rundir.METRICS_FILE)[1]
            for name, run in (("original", itself), ("converted", converted))
        }
        figures[f"{home} -> {away}"] = {
            "conversion_check": conversion["check"],
            "next_10_steps": steps,
            "round_trip": round_trip(original, back),
            "second_epoch_rows": rows,
            "test_accuracy": {
                name: rundir.read_json(run / rundir.TEST_METRICS_FILE)["test_accuracy"]
                for name, run in (("original", itself), ("converted", converted))
            },
        }
    (HERE / "continuation.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
