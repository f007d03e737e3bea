"""`fmnist benchmark`'s FLOP/s and MFU on synthetic results (no measurement runs): the figures,
which GEMM peak each variant is held against (the variant table's precision), a missing or
failed peak leaving MFU blank, the report's columns, header line and note, a failing peak worker
not ending the benchmark, and the peak worker itself on a small matrix, in process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from benchmarks import peak as peak_module
from benchmarks import report, stats
from benchmarks.variants import VARIANTS

REPO = Path(__file__).resolve().parents[1]
FLOPS = 15_786_240  # configs/baseline.yaml's training FLOPs per image (tests/test_flops.py)
PEAK = {
    "status": "ok",
    "matrix_size": 2048,
    "device": "cpu",
    "threads": 2,
    "float32": {"gflops_per_second": 100.0, "median_gflops_per_second": 90.0, "repeats": 5},
    "bfloat16": {"gflops_per_second": 400.0, "median_gflops_per_second": 350.0, "repeats": 5},
}


def _ok(runner: str, variant: str, train: float) -> dict:
    return {
        "runner": runner,
        "variant": variant,
        "batch_size": 128,
        "status": "ok",
        "train": {"images_per_s": {"median": train, "min": train, "max": train, "n": 1}},
    }


def _rows() -> list[dict]:
    return [
        _ok("plain torch", "eager", 5000.0),
        _ok("lightning", "channels_last+bf16", 10000.0),
        _ok("keras", "tf-bf16", 10000.0),
        _ok("keras", "tf", 2000.0),
        {"runner": "keras", "variant": "jax", "batch_size": 128, "status": "skipped", "reason": "jax is missing"},
    ]


def test_achieved_flops_and_mfu_against_the_peak_of_the_variants_dtype():
    rows = _rows()
    stats.add_mfu(rows, FLOPS, PEAK)
    eager, bf16, keras_bf16, tf, skipped = rows
    assert eager["train_flops_per_image"] == FLOPS
    assert eager["train_gflops_per_second"] == pytest.approx(5000 * FLOPS / 1e9)
    assert eager["mfu"] == pytest.approx(5000 * FLOPS / 1e9 / 100.0) and eager["peak_dtype"] == "float32"
    assert bf16["mfu"] == pytest.approx(10000 * FLOPS / 1e9 / 400.0) and bf16["peak_dtype"] == "bfloat16"
    assert keras_bf16["mfu"] == bf16["mfu"] and keras_bf16["peak_dtype"] == "bfloat16"
    assert tf["mfu"] == pytest.approx(2000 * FLOPS / 1e9 / 100.0)
    assert not {"train_flops_per_image", "train_gflops_per_second", "mfu"} & set(skipped)


def test_every_variant_is_held_against_its_precisions_peak():
    for variant in VARIANTS.values():
        rows = [_ok(variant.engines()[0], variant.name, 1000.0)]
        stats.add_mfu(rows, FLOPS, PEAK)
        expected = "bfloat16" if variant.precision == "bf16-mixed" else "float32"
        assert rows[0]["peak_dtype"] == expected, variant.name
        assert rows[0]["mfu"] == pytest.approx(1000 * FLOPS / 1e9 / PEAK[expected]["gflops_per_second"])


@pytest.mark.parametrize(
    "peak",
    [None, {"status": "error", "error": "RuntimeError: boom"}, {**PEAK, "float32": {"error": "RuntimeError: no"}}],
)
def test_a_missing_peak_leaves_mfu_blank_and_keeps_the_flops(peak):
    rows = _rows()
    stats.add_mfu(rows, FLOPS, peak)
    assert rows[0]["mfu"] is None and rows[0]["train_gflops_per_second"] == pytest.approx(5000 * FLOPS / 1e9)
    table = report.markdown_table(rows).splitlines()
    assert table[2].endswith(f"| {5000 * FLOPS / 1e9:,.1f} |  |")  # GFLOP/s, then a blank MFU
    bf16_has_peak = peak is not None and peak.get("status") == "ok"
    assert (rows[1]["mfu"] is not None) == bf16_has_peak


def test_the_table_columns_the_peak_line_and_the_note():
    rows = _rows()
    stats.add_mfu(rows, FLOPS, PEAK)
    table = report.markdown_table(rows).splitlines()
    assert table[0].endswith("| Lightning ÷ plain (median, 90% interval) | GFLOP/s | MFU |")
    assert all(line.count("|") == table[0].count("|") for line in table), table
    assert table[2].endswith("| 78.9 | 78.9% |")  # 5000 images/s x 15.8 MFLOP over 100 GFLOP/s
    assert table[3].endswith("| 157.9 | 39.5% |")  # bf16 against the bf16 peak
    assert report.mfu_cell(0.0042) == "0.42%" and report.mfu_cell(None) == ""

    assert report.peak_line(PEAK) == (
        "Peak (plain GEMM, 2048 x 2048, 2 threads): float32 100.0 GFLOP/s, bf16 400.0 GFLOP/s;"
        " best of 5 repeats (medians: float32 90.0, bf16 350.0)."
    )
    failed = report.peak_line({"status": "error", "error": "worker exited with code -9"})
    assert failed == "Peak (plain GEMM): not measured (worker exited with code -9); MFU left blank."
    half = report.peak_line({**PEAK, "bfloat16": {"error": "RuntimeError: no bf16"}})
    assert "float32 100.0 GFLOP/s, bf16 failed (RuntimeError: no bf16; its MFU left blank)" in half

    result = {
        "created": "2026-12-03 09:30 UTC",
        "settings": {"device": "cpu", "config": "configs/baseline.yaml", "data": "real", "steps": 4, "warmup": 1},
        "environment": {"hardware": {"cpu_model": "x", "logical_cpus": 2}, "versions": {}, "load_average_start": None},
        "peak": PEAK,
        "measurements": rows,
    }
    result["settings"]["repeats"] = 1
    md = report.markdown_report(result)
    assert report.peak_line(PEAK) in md.splitlines()
    assert "`GFLOP/s`: median training images/s x 15.8 MFLOP per image" in md and "`MFU`: that over" in md
    assert "Peak (plain GEMM" not in report.markdown_report({**result, "peak": None})  # older results


def test_a_failing_peak_worker_does_not_end_the_benchmark(tmp_path, monkeypatch):
    from benchmarks import orchestrate
    from benchmarks.measuring import timing_from_stamps

    def fake_worker(m, spec, timeout):
        start = time.perf_counter()
        stamps = [start + 0.01 * (i + 1) for i in range(spec["warmup"] + spec["steps"])]
        timing = timing_from_stamps(start, stamps, spec["warmup"], spec["batch_size"])
        return {"status": "ok", "spec": spec, "train": timing, "inference": timing, "peak_memory_mib": 1.0}

    asked = []

    def failing_peak(device, torch_threads, allow_tf32, timeout, **sizes):
        asked.append((device, torch_threads, allow_tf32))
        return {"status": "error", "error": "worker exited with code -9: killed"}

    monkeypatch.setattr(orchestrate, "run_worker", fake_worker)
    monkeypatch.setattr(orchestrate, "measure_peak", failing_peak)
    result = orchestrate.run_benchmark(
        engines_chosen=["lightning"],
        device="cpu",
        batch_sizes=[32],
        steps=3,
        warmup=1,
        repeats=1,
        config=REPO / "configs" / "baseline.yaml",
        variants=["eager"],
        data="synthetic",
        torch_threads=1,
        out=tmp_path / "bench",
        log=lambda line: None,
    )
    assert asked == [("cpu", 1, False)]  # once, with the measurements' threads and the config's TF32
    assert result["peak"]["error"].startswith("worker exited")
    assert [m["status"] for m in result["measurements"]] == ["ok", "ok"]
    assert all(m["mfu"] is None and m["train_gflops_per_second"] > 0 for m in result["measurements"])
    md = (tmp_path / "bench" / "benchmark.md").read_text()
    assert "Peak (plain GEMM): not measured (worker exited with code -9: killed); MFU left blank." in md


def test_the_peak_worker_on_a_small_matrix():
    got = peak_module.run({"device": "cpu", "matrix_size": 64, "torch_threads": 1})
    assert got["status"] == "ok" and got["matrix_size"] == 64 and got["threads"] == 1
    for dtype in ("float32", "bfloat16"):
        d = got[dtype]
        assert 0 < d["median_gflops_per_second"] <= d["gflops_per_second"], d
        assert d["repeats"] == peak_module.TIMED_REPEATS and d["matmuls_per_repeat"] >= 1
    timed_out = peak_module.measure_peak("cpu", 1, False, timeout=0.01)
    assert timed_out["status"] == "error" and "timed out" in timed_out["error"]


# ---------------------------------------------------------------------------------- where bf16 is emulated


def test_bf16_rows_on_a_cpu_that_emulates_bf16_say_so_and_show_no_mfu():
    rows = _rows()
    emulated = {"bfloat16": "emulated: AMD EPYC has none of avx512_bf16, amx_bf16"}
    stats.add_mfu(rows, FLOPS, {**PEAK, "bfloat16": {"skipped": emulated["bfloat16"], "emulated": True}}, emulated)
    eager, bf16, keras_bf16, tf, _ = rows
    assert bf16["mfu"] is None and keras_bf16["mfu"] is None and bf16["emulated"] == emulated["bfloat16"]
    assert bf16["train_gflops_per_second"] == pytest.approx(10000 * FLOPS / 1e9)  # what it did, still shown
    assert eager["mfu"] == pytest.approx(0.789, abs=1e-3) and "emulated" not in eager and "emulated" not in tf
    table = report.markdown_table(rows).splitlines()
    assert table[3].endswith("| 157.9 | emulated |") and table[4].endswith("| emulated |")
    note = "\n".join(report.mfu_note(rows))
    assert "`emulated` where the device has no bfloat16 instructions" in note


def test_a_measurement_above_its_peak_shows_no_mfu():
    rows = _rows()
    stats.add_mfu(rows, FLOPS, {**PEAK, "bfloat16": {"gflops_per_second": 0.3, "median_gflops_per_second": 0.3}})
    bf16 = rows[1]
    assert bf16["mfu"] is None and bf16["mfu_above_peak"] == pytest.approx(10000 * FLOPS / 1e9 / 0.3)
    assert report.markdown_table(rows).splitlines()[3].endswith("| 157.9 | above the peak |")
    assert "`above the peak`" in "\n".join(report.mfu_note(rows))
    assert all(m.get("mfu") is None or m["mfu"] <= 1 for m in rows)


def test_the_peak_line_says_why_bf16_was_not_measured():
    skipped = {**PEAK, "dtypes": ["float32"], "bfloat16": {"skipped": "emulated: X has none of a, b", "emulated": True}}
    assert report.peak_line(skipped) == (
        "Peak (plain GEMM, 2048 x 2048, 2 threads): float32 100.0 GFLOP/s, bf16 not measured (emulated: X has"
        " none of a, b; its MFU left out); best of 5 repeats (medians: float32 90.0)."
    )
    only_f32 = {k: v for k, v in PEAK.items() if k != "bfloat16"} | {"dtypes": ["float32"]}
    assert "bf16" not in report.peak_line(only_f32)  # not asked for: no variant computes in it


def test_on_a_cpu_that_emulates_bf16_the_benchmark_times_no_bf16_peak(tmp_path, monkeypatch, fake_cpu):
    """An AVX2-only CPU (faked): the peak worker is asked for float32 alone (a bf16 matmul there
    took minutes), the bf16 rows say emulated and no MFU is above 100%."""
    from benchmarks import orchestrate
    from benchmarks.measuring import timing_from_stamps
    from conftest import AMX_CPU, AVX2_CPU

    def fake_worker(m, spec, timeout):
        start = time.perf_counter()
        stamps = [start + 0.01 * (i + 1) for i in range(spec["warmup"] + spec["steps"])]
        timing = timing_from_stamps(start, stamps, spec["warmup"], spec["batch_size"])
        return {"status": "ok", "spec": spec, "train": timing, "inference": timing, "peak_memory_mib": 1.0}

    asked = []
    real_peak = orchestrate.measure_peak

    def small_peak(*args, **kwargs):
        asked.append(kwargs["dtypes"])
        return real_peak(*args, **kwargs)

    monkeypatch.setattr(orchestrate, "run_worker", fake_worker)
    monkeypatch.setattr(orchestrate, "measure_peak", small_peak)
    kwargs = dict(
        engines_chosen=["lightning"],
        device="cpu",
        batch_sizes=[32],
        steps=3,
        warmup=1,
        repeats=1,
        config=REPO / "configs" / "baseline.yaml",
        variants=["eager", "bf16"],
        data="synthetic",
        torch_threads=1,
        log=lambda line: None,
        peak_matrix_size=64,
    )
    fake_cpu(AVX2_CPU)
    result = orchestrate.run_benchmark(out=tmp_path / "avx2", **kwargs)
    assert asked == [("float32", "bfloat16")]
    peak = result["peak"]
    assert peak["dtypes"] == ["float32"] and peak["bfloat16"]["skipped"].startswith("emulated: AMD EPYC 7R32")
    rows = {(m["runner"], m["variant"]): m for m in result["measurements"]}
    assert all(m["emulated"] and m["mfu"] is None for (_, v), m in rows.items() if v == "bf16")
    assert all("emulated" not in m for (_, v), m in rows.items() if v == "eager")
    assert all(m["mfu"] is None or m["mfu"] <= 1 for m in rows.values())
    md = (tmp_path / "avx2" / "benchmark.md").read_text()
    assert "bf16 not measured (emulated: AMD EPYC 7R32 has none of avx512_bf16, amx_bf16" in md
    assert md.count("| emulated |") == 2

    fake_cpu(AMX_CPU)  # bfloat16 native: its peak is timed, and no row says emulated
    result = orchestrate.run_benchmark(out=tmp_path / "amx", **kwargs)
    assert result["peak"]["dtypes"] == ["float32", "bfloat16"] and result["peak"]["bfloat16"]["gflops_per_second"]
    assert not any(m.get("emulated") for m in result["measurements"])


def test_the_peak_worker_times_only_the_dtypes_asked():
    got = peak_module.run({"device": "cpu", "matrix_size": 64, "torch_threads": 1, "dtypes": ["float32"]})
    assert got["status"] == "ok" and got["dtypes"] == ["float32"] and "bfloat16" not in got
