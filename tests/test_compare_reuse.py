"""`fmnist compare` reuses a run only when it was made with what is asked for, continues an
unfinished matching one with --resume, retrains stale ones only with --rerun-stale, and never
writes its report over someone's files (the rest of the file-safety tests: test_file_safety.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from fmnist import rundir
from fmnist.config import with_overrides
from fmnist.errors import FmnistError
from file_safety import BASELINE, SHA, _listing, _tiny_config


# --------------------------------------------------------------------------------------------
# fmnist compare: reuse only what matches the request


def _fake_run(
    out: Path, engine: str, seed: int, config, finished: bool = True, record_changes: dict | None = None
) -> Path:
    from compare.runner import run_dir_for
    from fmnist.training import run_record

    run_dir = run_dir_for(out, engine, seed)
    run_dir.mkdir(parents=True)
    record = run_record(engine, with_overrides(config, {"seed": seed}), SimpleNamespace(sha256=SHA))
    for key, value in (record_changes or {}).items():
        if value is None:
            record.pop(key)
        else:
            record[key] = value
    rundir.write_run_info(run_dir, record)
    if finished:
        rundir.write_json(run_dir / rundir.TEST_METRICS_FILE, {"engine": engine})
    return run_dir


def test_compare_plan_reuses_matching_runs_and_resumes_unfinished_ones(tmp_path):
    from compare.runner import plan

    config = _tiny_config()
    _fake_run(tmp_path, "keras", 0, config)
    _fake_run(tmp_path, "lightning", 0, config, finished=False)
    actions = {(p.engine, p.seed): p.action for p in plan(config, [0, 1], tmp_path, SHA)}
    assert actions == {
        ("keras", 0): "reuse",
        ("lightning", 0): "resume",
        ("keras", 1): "train",
        ("lightning", 1): "train",
    }


@pytest.mark.parametrize(
    "change, named",
    [
        ({"train.epochs": 3}, "train.epochs: run 1, asked 3"),
        ({"train.optimizer.lr": 0.01}, "train.optimizer.lr: run 0.001, asked 0.01"),
        ({"train.precision": "bf16-mixed"}, "precision: run 'float32', asked 'bf16-mixed'"),
        ({"data.limit_train": 600}, "data.limit_train: run 300, asked 600"),
    ],
)
def test_compare_plan_refuses_a_run_made_with_other_settings(tmp_path, change, named):
    from compare.runner import plan

    _fake_run(tmp_path, "keras", 0, _tiny_config())
    asked = _tiny_config(**change)
    with pytest.raises(FmnistError) as refused:
        plan(asked, [0], tmp_path, SHA)
    message = str(refused.value)
    assert named in message and "another --out" in message and "--rerun-stale" in message
    assert "\n" not in message
    stale = [p for p in plan(asked, [0], tmp_path, SHA, rerun_stale=True) if p.engine == "keras"]
    assert stale[0].action == "retrain" and named in stale[0].why


@pytest.mark.parametrize(
    "record_change, named",
    [
        ({"data_sha256": {**SHA, "t10k-images-idx3-ubyte": "c" * 64}}, "data t10k-images-idx3-ubyte"),
        ({"config": None}, "config: not recorded"),
        ({"data_sha256": None}, "data checksums: not recorded"),
        ({"precision": None}, "precision: not recorded"),
        ({"seed": 7}, "seed: run 7, asked 0"),
    ],
)
def test_compare_plan_treats_other_data_or_missing_records_as_a_mismatch(tmp_path, record_change, named):
    from compare.runner import plan

    config = _tiny_config()
    _fake_run(tmp_path, "keras", 0, config, record_changes=record_change)
    with pytest.raises(FmnistError, match="--rerun-stale") as refused:
        plan(config, [0], tmp_path, SHA)
    assert named in str(refused.value)


def test_compare_plan_refuses_a_run_folder_holding_no_run(tmp_path):
    from compare.runner import plan, run_dir_for

    folder = run_dir_for(tmp_path, "keras", 0)
    folder.mkdir(parents=True)
    (folder / "notes.md").write_text("mine")
    for rerun_stale in (False, True):
        with pytest.raises(FmnistError, match="holds files but no run of fmnist"):
            plan(_tiny_config(), [0], tmp_path, SHA, rerun_stale=rerun_stale)
    assert (folder / "notes.md").read_text() == "mine"


@pytest.mark.slow  # 60 s of real trainings; the plan's refusals are unit-tested above in the default tier
def test_compare_refuses_stale_runs_and_retrains_them_with_rerun_stale(
    fmnist_cli, one_line_error, tmp_path, real_data_dir
):
    out = tmp_path / "report"
    common = [
        "compare",
        "--config",
        str(BASELINE),
        "--seeds",
        "0",
        "--limit-train",
        "300",
        "--limit-test",
        "100",
        "--data-dir",
        str(real_data_dir),
        "--out",
        str(out),
    ]
    first = fmnist_cli(*common, "--epochs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    runs = {b: out / "runs" / f"{b}-seed0" for b in ("keras", "lightning")}
    stamps = {b: (r / rundir.TEST_METRICS_FILE).stat().st_mtime_ns for b, r in runs.items()}

    one_line_error(
        fmnist_cli(*common, "--epochs", "2"), "train.epochs: run 1, asked 2", "--rerun-stale", "another --out"
    )
    one_line_error(
        fmnist_cli(*common, "--epochs", "1", "--precision", "bf16-mixed"),
        "precision: run 'float32', asked 'bf16-mixed'",
        "--rerun-stale",
    )
    edited = tmp_path / "baseline.yaml"  # the same config with one value changed
    edited.write_text(BASELINE.read_text().replace("lr: 0.001", "lr: 0.002"))
    assert edited.read_text() != BASELINE.read_text()
    one_line_error(
        fmnist_cli(*[a if a != str(BASELINE) else str(edited) for a in common], "--epochs", "1"),
        "train.optimizer.lr: run 0.001, asked 0.002",
        "--rerun-stale",
    )
    assert {b: (r / rundir.TEST_METRICS_FILE).stat().st_mtime_ns for b, r in runs.items()} == stamps  # untouched

    rerun = fmnist_cli(*common, "--epochs", "2", "--rerun-stale")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stdout.count("retraining") == 2 and "reusing" not in rerun.stdout
    for run_dir in runs.values():
        assert json.loads((run_dir / rundir.TEST_METRICS_FILE).read_text())["epochs"] == 2
        assert [r["epoch"] for r in rundir.read_metrics(run_dir / "metrics.csv")] == [1, 2]
    assert json.loads((out / "summary.json").read_text())  # the report is of the new runs


def test_compare_out_holding_foreign_files_is_refused(fmnist_cli, one_line_error, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    (out / "report.md").write_text("my own report\n")
    before = _listing(out)
    for args in (["--seeds", "0", "--epochs", "1"], ["--runs", str(tmp_path / "a"), str(tmp_path / "b")]):
        result = fmnist_cli("compare", "--config", str(BASELINE), *args, "--out", str(out))
        one_line_error(result, f"--out {out} holds files that are not a compare report (thesis.tex)")
    assert _listing(out) == before


def test_a_report_folder_is_recognised_as_one(tmp_path):
    from compare.report import REPORT_ARTIFACTS, check_report_dir

    check_report_dir(tmp_path / "new")  # absent: fine
    for name in REPORT_ARTIFACTS:
        (tmp_path / name).write_text("x")
    (tmp_path / ".report.md.abc.tmp.md").write_text("x")  # a killed atomic write
    check_report_dir(tmp_path)


def test_compare_says_how_many_runs_it_trains_before_what_each_does(tmp_path, capsys):
    """The count line first, then one line per run (reused, resumed or trained), then the executor."""
    from compare.runner import train_all

    config = _tiny_config()
    _fake_run(tmp_path, "keras", 0, config)

    class Recorder:
        threads = 1

        def describe(self) -> str:
            return "recorded"

        def run(self, jobs, logs, prefix):
            print("[executor] started", flush=True)
            raise KeyboardInterrupt  # nothing trains here: the order of the lines is the test

    with pytest.raises(KeyboardInterrupt):
        train_all([0], tmp_path, config=config, data_sha256=SHA, executor=Recorder())
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert lines[0] == "[compare] 1 run to train: recorded"
    assert "keras seed 0: finished earlier" in lines[1] and "lightning seed 0: training into" in lines[2]
    assert lines[3] == "[executor] started"
