"""Lightning's overhead in `fmnist benchmark`, from pairs: the order a repeat runs its measurements
in (a variant's plain loop and Lightning back to back, which goes first alternating), the median
of the pairs' ratios with its order-statistic interval on known inputs, and a run through the
orchestrator with the workers faked, whose JSON and table carry them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from benchmarks import report, stats
from benchmarks.plan import Measurement, plan, run_order

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------- the interval


def test_five_values_give_min_to_max_at_fifteen_sixteenths():
    got = stats.median_interval([1.03, 0.97, 0.99, 1.10, 0.95])
    assert got == {"median": 0.99, "low": 0.95, "high": 1.10, "level": 0.90, "coverage": 1 - 2 / 32, "n": 5}


def test_ten_values_drop_one_at_each_end():
    # k = 2: 1 - 2 (1 + 10) / 1024 = 0.9785 >= 0.90; k = 3 would cover 1 - 2 * 56 / 1024 = 0.8906 only.
    got = stats.median_interval(list(range(10, 0, -1)))
    assert (got["low"], got["high"], got["median"]) == (2.0, 9.0, 5.5)
    assert got["coverage"] == pytest.approx(1 - 22 / 1024)
    assert stats.median_interval(range(10), level=0.8)["coverage"] == pytest.approx(1 - 112 / 1024)


def test_too_few_values_give_no_interval_and_nonsense_is_refused():
    four = stats.median_interval([1.0, 2.0, 3.0, 4.0])  # min to max would cover 7/8 only
    assert four["median"] == 2.5 and four["low"] is four["high"] is four["coverage"] is None and four["n"] == 4
    assert stats.median_interval([0.9])["median"] == 0.9
    with pytest.raises(ValueError):
        stats.median_interval([])
    with pytest.raises(ValueError):
        stats.median_interval([1.0], level=1.0)


def _repeat(images_per_s: float | None) -> dict:
    if images_per_s is None:
        return {"status": "error", "error": "boom"}
    return {"status": "ok", "train": {"images_per_s": images_per_s}}


def test_pair_ratios_pair_repeat_i_with_repeat_i():
    lightning = [_repeat(90.0), _repeat(None), _repeat(99.0)]
    plain = [_repeat(100.0), _repeat(100.0), _repeat(None)]
    assert stats.paired_ratios(lightning, plain) == [0.9, None, None]


def test_the_table_cell():
    assert report.paired_ratio_cell(stats.median_interval([0.95, 0.96, 0.94, 0.97, 0.93])) == "0.950 (0.930–0.970)"
    assert report.paired_ratio_cell(stats.median_interval([0.95, 0.97])) == (
        "0.960 (2 pairs; too few for a 90% interval)"
    )
    assert report.paired_ratio_cell(None) == ""


# ---------------------------------------------------------------------------------- the order


def test_a_variant_s_plain_loop_and_lightning_run_back_to_back_alternating_which_first():
    planned = plan(["keras", "lightning"], ["eager", "channels_last", "tf", "tf-xla"], [128])
    first, second = run_order(planned, 0), run_order(planned, 1)
    assert sorted(first, key=planned.index) == planned and second == first[::-1]
    names = [(m.runner, m.variant) for m in first]
    assert names == [
        ("keras", "tf"),
        ("plain torch", "eager"),
        ("lightning", "eager"),
        ("keras", "tf-xla"),
        ("plain torch", "channels_last"),
        ("lightning", "channels_last"),
    ]
    for order in (first, second):
        for variant in ("eager", "channels_last"):
            at = [i for i, m in enumerate(order) if m.variant == variant]
            assert at[1] == at[0] + 1, (variant, order)
    assert run_order(planned, 2) == first


# ---------------------------------------------------------------------------------- a run, workers faked


def test_a_paired_run_reports_the_median_ratio_with_its_interval(tmp_path, monkeypatch):
    from benchmarks import orchestrate

    lightning_speed = iter([0.90, 0.95, 0.92, 0.97, 0.93])  # Lightning's images/s over the plain loop's, per pair
    calls: list[Measurement] = []

    def fake_worker(m, spec, timeout):
        calls.append(m)
        step = 0.010 if m.runner == "plain torch" else 0.010 / next(lightning_speed)
        start = time.perf_counter()
        stamps = [start + step * (i + 1) for i in range(spec["warmup"] + spec["steps"])]
        from benchmarks.measuring import timing_from_stamps

        timing = timing_from_stamps(start, stamps, spec["warmup"], spec["batch_size"])
        return {"status": "ok", "spec": spec, "train": timing, "inference": timing, "peak_memory_mib": 1.0}

    monkeypatch.setattr(orchestrate, "run_worker", fake_worker)
    result = orchestrate.run_benchmark(
        engines_chosen=["lightning"],
        device="cpu",
        batch_sizes=[32],
        steps=4,
        warmup=1,
        repeats=5,
        config=REPO / "configs" / "baseline.yaml",
        out=tmp_path / "pairs",
        variants=["eager"],
        data="synthetic",
        log=lambda line: None,
        peak_matrix_size=64,  # no full-size peak in a test
    )
    assert [m.runner for m in calls] == ["plain torch", "lightning", "lightning", "plain torch"] * 2 + [
        "plain torch",
        "lightning",
    ]
    plain, lightning = result["measurements"]
    assert "pair_ratios" not in plain and "ratio_to_plain_paired" not in plain
    assert lightning["pair_ratios"] == pytest.approx([0.90, 0.95, 0.92, 0.97, 0.93])
    assert lightning["pair_first"] == ["plain torch", "lightning"] * 2 + ["plain torch"]
    paired = lightning["ratio_to_plain_paired"]
    assert paired["median"] == pytest.approx(0.93) and paired["n"] == 5
    assert (paired["low"], paired["high"]) == pytest.approx((0.90, 0.97)) and paired["coverage"] == 1 - 2 / 32
    assert lightning["ratio_to_plain"] == pytest.approx(0.93)  # median over median, as before
    written = json.loads((tmp_path / "pairs" / "benchmark.json").read_text())
    assert written["measurements"][1]["ratio_to_plain_paired"]["median"] == pytest.approx(0.93)
    md = (tmp_path / "pairs" / "benchmark.md").read_text()
    assert "Lightning ÷ plain (median, 90% interval)" in md
    header = next(line for line in md.splitlines() if "Lightning ÷ plain (median, 90% interval)" in line)
    row = next(line for line in md.splitlines() if line.startswith("| lightning / eager"))
    cells = dict(zip(header.split(" | "), row.split(" | ")))
    assert cells["Lightning ÷ plain (median, 90% interval)"] == "0.930 (0.900–0.970)"
