"""Time to accuracy (`fmnist benchmark --only-time-to-accuracy`): its summary and tables on known
rows, its seeds flag, and its runs through the CLI with a fake worker (order, seeds, the parent's
clock); the real workers on a tiny budget in the slow tier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.plan import BenchmarkError

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------- time to accuracy


def _tta_row(engine, seed, accuracy, seconds, target=0.91, **extra):
    return {
        "engine": engine,
        "seed": seed,
        "target": target,
        "status": "ok",
        "test_accuracy": accuracy,
        "reached": accuracy >= target,
        "seconds": seconds,
        "epochs": 8,
        "train_seconds": seconds - 10.0,
        "process_wall_seconds": seconds + 1.5,
        **extra,
    }


def test_time_to_accuracy_summary_and_table_on_synthetic_rows():
    """The share is of all runs (a failed one counts as not reached, and is listed with its error);
    the medians (min–max) are over the runs that finished."""
    from benchmarks.time_to_accuracy_summary import summarize

    rows = [
        _tta_row("keras", 0, 0.9130, 44.0),
        _tta_row("lightning", 0, 0.9120, 55.0),
        _tta_row("keras", 1, 0.9050, 40.0),
        {"engine": "lightning", "seed": 1, "target": 0.91, "status": "error", "error": "RuntimeError: no | go\nx"},
        _tta_row("keras", 2, 0.9110, 42.5),
        _tta_row("lightning", 2, 0.9000, 53.0),
    ]
    keras, lightning = summarize(rows, ["keras", "lightning"])
    assert keras == {
        "engine": "keras",
        "runs": 3,
        "failed": 0,
        "reached": 2,
        "reached_share": pytest.approx(2 / 3),
        "seconds": {"median": 42.5, "min": 40.0, "max": 44.0, "n": 3},
        "test_accuracy": {"median": 0.9110, "min": 0.9050, "max": 0.9130, "n": 3},
    }
    assert (lightning["runs"], lightning["failed"], lightning["reached"]) == (3, 1, 1)
    assert lightning["reached_share"] == pytest.approx(1 / 3)
    assert lightning["seconds"] == {"median": 54.0, "min": 53.0, "max": 55.0, "n": 2}
    assert summarize(rows[3:4], ["lightning"])[0]["seconds"] is None  # no finished run: no medians

    result = {"target": 0.91, "summary": [keras, lightning], "runs": rows}
    table = report.time_to_accuracy_table(result).splitlines()
    assert table[0] == (
        "| engine | runs | reached 91.00% | seconds, median (min–max) | final test accuracy, median (min–max) |"
    )
    assert table[2] == "| keras | 3 | 2 of 3 (67%) | 42.5 (40.0–44.0) | 91.10% (90.50%–91.30%) |"
    assert table[3] == "| lightning | 3 | 1 of 3 (33%; 1 failed) | 54.0 (53.0–55.0) | 90.60% (90.00%–91.20%) |"
    assert "from the benchmark's clock just before it starts the run's process" in table[5]
    runs = table[
        table.index(
            "| engine | seed | final test accuracy | reached | seconds | epochs | training s | process wall s |"
        ) :
    ]
    assert all(line.count("|") == runs[0].count("|") for line in runs), runs
    assert runs[2] == "| keras | 0 | 91.30% | yes | 44.0 | 8 | 34.0 | 45.5 |"
    assert runs[4] == "| keras | 1 | 90.50% | no | 40.0 | 8 | 30.0 | 41.5 |"
    assert runs[5] == "| lightning | 1 | error: RuntimeError: no / go x | no |  |  |  |  |"


def test_time_to_accuracy_seeds_parsing():
    from fmnist_cli.benchmark import DEFAULT_SEEDS, parse_seeds
    from fmnist_cli.main import build_parser

    assert parse_seeds(DEFAULT_SEEDS) == [0, 1, 2, 3, 4]
    assert build_parser().parse_args(["benchmark"]).time_to_accuracy_seeds == DEFAULT_SEEDS
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("7, 0-2,1,9-9") == [7, 0, 1, 2, 9]
    for bad, message in (
        ("3-1", "a range counts upwards, got '3-1'"),
        ("-1", "expected a whole number"),
        ("0,x", "expected a whole number, got 'x'"),
        ("1-", "expected a whole number"),
        (",", "expected a comma-separated list"),
    ):
        with pytest.raises(BenchmarkError, match="--time-to-accuracy-seeds: ") as caught:
            parse_seeds(bad)
        assert message in str(caught.value), (bad, caught.value)


def test_time_to_accuracy_seconds_run_from_the_parents_clock():
    from benchmarks.time_to_accuracy import run_order, seconds_between

    assert run_order(["keras", "lightning"], [0, 1]) == [("keras", 0), ("lightning", 0), ("keras", 1), ("lightning", 1)]
    assert seconds_between(1000.0, 1042.25) == pytest.approx(42.25)
    with pytest.raises(ValueError, match="the clock moved"):
        seconds_between(1000.0, 999.0)


def test_time_to_accuracy_through_the_cli_with_a_fake_worker(tmp_path, real_data_dir, monkeypatch, capsys):
    """Every (engine, seed) is its own process, the engines alternating, the seed and the budget
    handed over; the seconds count from the parent's clock before the process started, not from the
    worker's own start; a crashed worker is a run that failed; benchmark.json, benchmark.md and the
    console carry the summary and the rows. The worker is a real process of a stand-in module."""
    import benchmarks.time_to_accuracy as tta
    from fmnist_cli.main import main

    specs_log = tmp_path / "specs.jsonl"
    (tmp_path / "fake_tta_worker.py").write_text(
        f"""
import json, os, signal, sys, time
now = time.time()  # no earlier than the parent's reading

def job(request, out):
    spec = request["spec"]
    with open({str(specs_log)!r}, "a") as f:
        f.write(json.dumps({{k: v for k, v in spec.items() if k != "config"}}) + "\\n")
    accuracy = {{("keras", 0): 0.913, ("keras", 1): 0.905, ("keras", 2): 0.911, ("lightning", 0): 0.912,
                ("lightning", 2): 0.900}}
    key = (spec["engine"], spec["seed"])
    if key == ("lightning", 1):  # killed before it could write
        print("loading", flush=True)
        print("Killed", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return {{
        "engine": spec["engine"], "seed": spec["seed"], "status": "ok", "test_accuracy": accuracy[key],
        "epochs": spec["max_epochs"], "max_epochs": spec["max_epochs"],
        "config_name": spec["config"]["name"],
        "worker_started_at": now + 5.0,  # a late start of its own: not the clock's start
        "accuracy_known_at": now + 40.0 + spec["seed"],
        "import_seconds": 4.0, "data_seconds": 1.0, "build_seconds": 0.5, "train_seconds": 28.0,
        "test_eval_seconds": 1.5}}
"""
    )
    # The stand-in declared as a job kind of its own, by a distribution beside it (as pip leaves one).
    info = tmp_path / "fake_tta_worker-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-tta-worker\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[fmnist.jobs]\nfake-time-to-accuracy = fake_tta_worker:job\n")
    monkeypatch.setattr(tta, "WORKER_JOB", "fake-time-to-accuracy")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(REPO)]))
    out = tmp_path / "bench"
    code = main(
        [
            "benchmark",
            "--device",
            "cpu",
            "--only-time-to-accuracy",
            "--time-to-accuracy",
            "0.91",
            "--time-to-accuracy-config",
            str(REPO / "configs" / "fast.yaml"),
            "--time-to-accuracy-seeds",
            "0-2",
            "--max-epochs",
            "3",
            "--data-dir",
            str(real_data_dir),
            "--out",
            str(out),
        ]
    )
    console = capsys.readouterr()
    assert code == 0, console.err
    specs = [json.loads(line) for line in specs_log.read_text().splitlines()]
    order = [("keras", 0), ("lightning", 0), ("keras", 1), ("lightning", 1), ("keras", 2), ("lightning", 2)]
    assert [(s["engine"], s["seed"]) for s in specs] == order
    assert {(s["max_epochs"], s["target"], s["device"]) for s in specs} == {(3, 0.91, "cpu")}
    assert "[benchmark] time to accuracy: 6 runs of 3 epochs, target 91.00%: serial on" in console.err
    assert "[benchmark] keras seed 1: started on" in console.err and "[2 done, 1 running, 3 waiting]" in console.err

    data = json.loads((out / "benchmark.json").read_text())
    got = data["time_to_accuracy"]
    assert {k: got[k] for k in ("target", "epochs", "seeds")} == {"target": 0.91, "epochs": 3, "seeds": [0, 1, 2]}
    assert [(r["engine"], r["seed"], r["run_index"]) for r in got["runs"]] == [
        (b, s, i) for i, (b, s) in enumerate(order)
    ]
    first = got["runs"][0]
    assert 40.0 <= first["seconds"] < 41.0  # the parent's clock: not 35, from the worker's own start
    assert 5.0 <= first["startup_seconds"] < 6.0
    assert first["accuracy_known_at"] - first["started_at"] == pytest.approx(first["seconds"])
    assert first["reached"] is True and got["runs"][2]["reached"] is False
    assert {r["config_name"] for r in got["runs"] if r["status"] == "ok"} == {"fast"}  # the config in the request
    crashed = got["runs"][3]
    assert crashed["status"] == "error" and "exit -9" in crashed["error"] and "Killed" in crashed["error"]
    keras, lightning = got["summary"]
    assert (keras["runs"], keras["reached"], keras["failed"]) == (3, 2, 0)
    assert keras["seconds"]["median"] == pytest.approx(41.0, abs=0.5)
    assert keras["test_accuracy"] == {"median": 0.911, "min": 0.905, "max": 0.913, "n": 3}
    assert (lightning["runs"], lightning["reached"], lightning["failed"]) == (3, 1, 1)

    md = (out / "benchmark.md").read_text()
    assert "## Time to accuracy" in md and "fixed budget of 3 epochs, once per seed (0, 1, 2" in md
    assert "| keras | 3 | 2 of 3 (67%) |" in md and "| lightning | 3 | 1 of 3 (33%; 1 failed) |" in md
    assert "| keras | 3 | 2 of 3 (67%) |" in console.out  # the same table on the console
    assert not (out / "benchmark.png").exists()  # no throughput measured


@pytest.mark.slow
def test_time_to_accuracy_real_workers_on_a_tiny_budget(tmp_path, real_data_dir):
    """The real worker, both engines, one seed, one epoch on 3,000 training images: each run ends
    with its one test pass, above chance, timed from the parent's clock."""
    from fmnist.config import load_config, save_config, with_overrides

    config = tmp_path / "tiny.yaml"
    save_config(with_overrides(load_config(REPO / "configs" / "fast.yaml"), {"data.limit_train": 3000}), config)
    out = tmp_path / "bench"
    script = Path(sys.executable).parent / "fmnist"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "fmnist_cli"]
    result = subprocess.run(
        [
            *cmd,
            "benchmark",
            "--device",
            "cpu",
            "--only-time-to-accuracy",
            "--time-to-accuracy",
            "0.5",
            "--time-to-accuracy-config",
            str(config),
            "--time-to-accuracy-seeds",
            "3",
            "--max-epochs",
            "1",
            "--data-dir",
            str(real_data_dir),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads((out / "benchmark.json").read_text())["time_to_accuracy"]
    assert [(r["engine"], r["seed"]) for r in got["runs"]] == [("keras", 3), ("lightning", 3)]
    for r in got["runs"]:
        assert r["status"] == "ok", r.get("error")
        assert r["epochs"] == r["max_epochs"] == 1
        assert 0.3 < r["test_accuracy"] <= 1.0, r
        assert 0 < r["train_seconds"] < r["seconds"] < r["process_wall_seconds"] + 1.0, r
        parts = ("startup_seconds", "import_seconds", "data_seconds", "build_seconds", "train_seconds")
        assert all(r[k] > 0 for k in (*parts, "test_eval_seconds")), r
        assert sum(r[k] for k in (*parts, "test_eval_seconds")) <= r["seconds"] + 0.5, r
    assert [s["runs"] for s in got["summary"]] == [1, 1]
    versions = json.loads((out / "benchmark.json").read_text())["environment"]["versions"]
    assert {"keras", "tensorflow", "torch", "lightning"} <= set(versions), versions
    assert "timed steps" not in (out / "benchmark.md").read_text()  # no throughput was measured
