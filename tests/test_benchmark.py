"""`fmnist benchmark`: the statistics and the table on known inputs, the flag errors (and a
renamed flag's old name), and a CI-sized run through the real CLI (a few steps of the eager
variants, the plain torch loop and Keras on TensorFlow) whose JSON, Markdown table and chart
are checked. Time to accuracy has its own file (test_time_to_accuracy.py), the variant table too
(test_benchmark_variants.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report, stats
from benchmarks.plan import BenchmarkError, Measurement, parse_batch_sizes, parse_list, plan

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------- statistics


def test_median_and_p90_on_known_values():
    assert stats.median([4, 1, 3, 2]) == 2.5
    assert stats.percentile(range(1, 11), 90) == pytest.approx(9.1)
    steps = stats.step_time_stats([0.010, 0.020, 0.030, 0.040, 0.050])
    assert steps == {"median_ms": pytest.approx(30.0), "p90_ms": pytest.approx(46.0)}
    assert stats.summarize([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}


def test_statistics_refuse_nonsense():
    with pytest.raises(ValueError):
        stats.percentile([], 50)
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)
    with pytest.raises(ValueError):
        stats.throughput(128, 0.0)
    assert stats.throughput(1280, 0.5) == 2560


ENGINE_OF = {"plain torch": "lightning", "lightning": "lightning", "keras": "keras", "pytorch": "pytorch"}


def _ok(runner, variant, train, infer=20_000.0, batch=128):
    return {
        "engine": ENGINE_OF[runner],
        "runner": runner,
        "variant": variant,
        "batch_size": batch,
        "status": "ok",
        "train": {
            "images_per_s": {"median": train, "min": train * 0.9, "max": train * 1.1, "n": 3},
            "step_time": {"median_ms": 128e3 / train, "p90_ms": 1.2 * 128e3 / train},
        },
        "inference": {"images_per_s": {"median": infer, "min": infer, "max": infer, "n": 3}},
        "warmup_seconds": {"median": 1.25, "min": 1.0, "max": 1.5, "n": 3},
        "peak_memory_mib": 900.4,
    }


def test_ratio_and_markdown_table():
    rows = [
        _ok("plain torch", "eager", 5000.0),
        _ok("lightning", "eager", 4750.0),
        _ok("keras", "tf", 8300.0),
        {
            "engine": "keras-jax",
            "runner": "keras",
            "variant": "jax",
            "batch_size": 128,
            "status": "skipped",
            "reason": "jax is not installed",
        },
        {
            "engine": "lightning",
            "runner": "lightning",
            "variant": "compile",
            "batch_size": 128,
            "status": "error",
            "error": "RuntimeError: no | compiler\nsecond line",
        },
    ]
    stats.add_ratios(rows)
    rows[1]["ratio_to_plain_paired"] = stats.median_interval([0.96, 0.93, 0.95, 0.97, 0.94])
    assert rows[1]["ratio_to_plain"] == pytest.approx(0.95)
    assert "ratio_to_plain" not in rows[0] and "ratio_to_plain" not in rows[2]
    table = report.markdown_table(rows).splitlines()
    assert table[0].startswith("| measurement | batch | train images/s")
    assert all(line.count("|") == table[0].count("|") for line in table), table
    assert (
        "| lightning / eager | 128 | 4,750 (4,275–5,225) | 26.9 / 32.3 | 20,000 (20,000–20,000) | 1.2 (1.0–1.5)"
        " | 900 | 0.950 | 0.950 (0.930–0.970) |  |  |" in table  # GFLOP/s and MFU: tests/test_benchmark_mfu.py
    )
    assert any("skipped: jax is not installed" in line for line in table)
    assert any("error: RuntimeError: no / compiler second line" in line for line in table)


# ---------------------------------------------------------------------------------- flags and plan


def test_flag_parsing():
    assert parse_list("keras, lightning,keras", ("keras", "lightning"), "--engine") == ["keras", "lightning"]
    assert parse_batch_sizes("128,1024") == [128, 1024]
    for bad in ("0", "12x", ","):
        with pytest.raises(BenchmarkError):
            parse_batch_sizes(bad)
    with pytest.raises(BenchmarkError, match="unknown 'tensorflow'; choose from keras, lightning"):
        parse_list("tensorflow", ("keras", "lightning"), "--engine")


def test_plan_alternates_engines_and_pairs_lightning_with_the_plain_loop():
    steps = plan(["keras", "lightning"], ["eager", "tf", "tf-xla"], [128])
    assert [m.runner for m in steps] == ["keras", "plain torch", "keras", "lightning"]
    assert Measurement("lightning", "plain torch", "eager", 128) in steps
    assert Measurement("lightning", "lightning", "eager", 128) in steps
    with pytest.raises(BenchmarkError, match="none of the chosen variants"):
        plan(["lightning"], ["tf"], [128])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--engines", "tensorflow"], "--engines: unknown 'tensorflow'"),
        (["--variants", "fast"], "--variants: unknown 'fast'"),
        (["--batch-size", "0"], "--batch-size: must be at least 1"),
        (["--device", "tpu"], "--device: unknown 'tpu'"),
        (["--config", "no/such.yaml"], "--config: no such file"),
        (["--time-to-accuracy-config", "no/such.yaml"], "--time-to-accuracy-config: no such file"),
        (["--time-to-accuracy", "91"], "--time-to-accuracy: a test accuracy between 0 and 1"),
        (["--time-to-accuracy-seeds", "3-1"], "--time-to-accuracy-seeds: a range counts upwards, got '3-1'"),
    ],
)
def test_bad_flags_get_one_line(argv, message, capsys):
    from fmnist_cli.main import main

    assert main(["benchmark", "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fmnist: error: ") and message in err and len(err.splitlines()) == 1


def test_the_renamed_time_to_accuracy_config_flag_still_works_with_one_warning(capsys):
    """--tta-config (its old name) is accepted for a release: the same setting, one line on stderr."""
    from fmnist_cli.main import build_parser, main

    old = build_parser().parse_args(["benchmark", "--tta-config", "configs/fast.yaml"])
    assert old.time_to_accuracy_config == Path("configs/fast.yaml")
    assert capsys.readouterr().err == (
        "fmnist: warning: --tta-config is deprecated and will be removed in the next release;"
        " use --time-to-accuracy-config\n"
    )
    new = build_parser().parse_args(["benchmark", "--time-to-accuracy-config", "configs/fast.yaml"])
    assert new.time_to_accuracy_config == Path("configs/fast.yaml") and capsys.readouterr().err == ""

    assert main(["benchmark", "--device", "cpu", "--tta-config", "no/such.yaml"]) == 2  # it reaches the run
    warning, error = capsys.readouterr().err.strip().splitlines()
    assert warning.startswith("fmnist: warning: --tta-config is deprecated")
    assert error.startswith("fmnist: error: --time-to-accuracy-config: no such file")


# ---------------------------------------------------------------------------------- a real run


def _numbers(obj, path=""):
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return
    if isinstance(obj, (int, float)):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]")


def test_ci_sized_benchmark_run(tmp_path, real_data_dir):
    out = tmp_path / "bench"
    script = Path(sys.executable).parent / "fmnist"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "fmnist_cli"]
    result = subprocess.run(
        [
            *cmd,
            "benchmark",
            "--device",
            "cpu",
            "--engines",
            "keras,lightning",  # the pytorch engine's loop is Lightning's reference loop: tests/test_pytorch_engine.py
            "--variants",
            "eager,tf",
            "--steps",
            "4",
            "--warmup",
            "1",
            "--repeats",
            "1",
            "--batch-size",
            "32",
            "--data",
            "real",
            "--data-dir",
            str(real_data_dir),
            "--out",
            str(out),
            "--peak-size",
            "128",  # no full-size peak in a test
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[benchmark 3/3]" in result.stderr  # per-measurement progress lines

    data = json.loads((out / "benchmark.json").read_text())
    assert data["schema"] == "fmnist-benchmark/1"
    assert {"settings", "environment", "measurements", "created"} <= set(data)
    env = data["environment"]
    assert env["hardware"]["cpu_model"] and env["hardware"]["logical_cpus"] >= 1
    for name in ("torch", "lightning", "keras", "tensorflow"):
        assert name in env["versions"], name
    assert data["settings"]["device"] == "cpu" and data["settings"]["data"] == "real"

    got = {(m["runner"], m["variant"]): m for m in data["measurements"]}
    assert set(got) == {("keras", "tf"), ("plain torch", "eager"), ("lightning", "eager")}
    for m in got.values():
        assert m["status"] == "ok", m.get("error")
        assert m["batch_size"] == 32 and m["train"]["timed_steps_per_repeat"] == 4
        for key in ("train", "inference"):
            assert m[key]["images_per_s"]["min"] <= m[key]["images_per_s"]["median"] <= m[key]["images_per_s"]["max"]
            assert m[key]["step_time"]["median_ms"] <= m[key]["step_time"]["p90_ms"]
        assert m["threads"] and m["peak_memory_kind"]
        assert m["train_flops_per_image"] == 6 * 2_631_040  # the baseline's (tests/test_flops.py)
        assert m["train_gflops_per_second"] == pytest.approx(m["train"]["images_per_s"]["median"] * 6 * 2.63104e-3)
        # against the plain-GEMM peak measured first (a small one here: a share above 1 is left out)
        share = m["train_gflops_per_second"] / data["peak"]["float32"]["gflops_per_second"]
        if share <= 1:
            assert m["mfu"] == pytest.approx(share) and 0 < m["mfu"]
        else:
            assert m["mfu"] is None and m["mfu_above_peak"] == pytest.approx(share)
        for path, value in _numbers(
            {k: m[k] for k in ("train", "inference", "warmup_seconds", "peak_memory_mib", "first_step_seconds")}
        ):
            assert math.isfinite(value) and value > 0, (m["runner"], path, value)
    assert got[("plain torch", "eager")]["threads"]["torch_intra_op"] >= 1
    peak = data["peak"]
    assert peak["status"] == "ok" and peak["device"] == "cpu", peak.get("error")
    assert peak["float32"]["gflops_per_second"] > 0 and peak["matrix_size"] == 128
    assert peak["dtypes"] == ["float32"] and "bfloat16" not in peak  # no variant measured computes in bf16
    assert "tf_intra_op" in got[("keras", "tf")]["threads"]
    lightning, plain = got[("lightning", "eager")], got[("plain torch", "eager")]
    assert lightning["ratio_to_plain"] > 0
    assert len(lightning["pair_ratios"]) == 1 and lightning["ratio_to_plain_paired"]["n"] == 1
    # The same work on both sides: float32 on CPU is deterministic, so the same train loss and
    # accuracy over the measured steps.
    assert lightning["train_epoch_metrics"] == pytest.approx(plain["train_epoch_metrics"], abs=1e-5)

    md = (out / "benchmark.md").read_text()
    assert "| lightning / eager | 32 |" in md and "| keras / tf | 32 |" in md
    assert "Lightning ÷ plain (median, 90% interval)" in md and "(1 pair; too few for a 90% interval)" in md
    assert f"Peak (plain GEMM, {peak['matrix_size']} x {peak['matrix_size']}" in md and "| GFLOP/s | MFU |" in md
    png = (out / "benchmark.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
