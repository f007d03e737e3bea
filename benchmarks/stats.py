"""The figures of `fmnist benchmark`: percentiles, throughput, the repeats of a measurement
folded into medians with (min, max), and Lightning's overhead as the median of paired ratios
with a distribution-free interval, and each measurement's achieved FLOP/s and MFU. No framework
imported.

Percentiles are numpy's (linear interpolation between order statistics), so the median of an
even count is the mean of the two middle values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from benchmarks.plan import Measurement


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) of values, linear interpolation; ValueError if empty."""
    data = [float(v) for v in values]
    if not data:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    return float(np.percentile(data, q))


def median(values: Iterable[float]) -> float:
    return percentile(values, 50.0)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median with min and max (the figures quoted for repeats)."""
    return {"median": median(values), "min": min(values), "max": max(values), "n": len(values)}


def step_time_stats(step_seconds: Sequence[float]) -> dict[str, float]:
    """Median and 90th percentile of step times, in milliseconds."""
    return {"median_ms": 1e3 * median(step_seconds), "p90_ms": 1e3 * percentile(step_seconds, 90.0)}


def throughput(images: int, seconds: float) -> float:
    if seconds <= 0:
        raise ValueError(f"throughput over a non-positive time ({seconds} s)")
    return images / seconds


def aggregate(m: Measurement, repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """Median with min and max over the repeats that succeeded; the first error when none did."""
    ok = [r for r in repeats if r.get("status") == "ok"]
    base = {
        "engine": m.engine,
        "runner": m.runner,
        "variant": m.variant,
        "batch_size": m.batch_size,
        "repeats": len(repeats),
    }
    if not ok:
        first = repeats[0]
        return {
            **base,
            "status": first.get("status", "error"),
            "error": first.get("error") or first.get("reason"),
            "traceback": first.get("traceback"),
        }
    steps = [s for r in ok for s in r["train"]["step_seconds"]]
    infer_steps = [s for r in ok for s in r["inference"]["step_seconds"]]
    first = ok[0]
    out = {
        **base,
        "status": "ok",
        "failed_repeats": [r.get("error") for r in repeats if r.get("status") != "ok"],
        "data": first.get("data"),
        "train": {
            "images_per_s": summarize([r["train"]["images_per_s"] for r in ok]),
            "step_time": step_time_stats(steps),
            "timed_steps_per_repeat": first["train"]["steps"],
        },
        "inference": {
            "images_per_s": summarize([r["inference"]["images_per_s"] for r in ok]),
            "step_time": step_time_stats(infer_steps),
        },
        "warmup_seconds": summarize([r["train"]["warmup_seconds"] for r in ok]),
        "first_step_seconds": summarize([r["train"]["first_step_seconds"] for r in ok]),
        "peak_memory_mib": median([r["peak_memory_mib"] for r in ok if r.get("peak_memory_mib")] or [0]),
        "peak_memory_kind": first.get("peak_memory_kind"),
        "process_wall_seconds": summarize([r.get("process_wall_seconds", 0.0) for r in ok]),
        "final_loss": first.get("final_loss"),
        "train_epoch_metrics": first.get("train_epoch_metrics"),
        "threads": first.get("threads"),
        "flags": first.get("flags"),
        "malloc": first.get("malloc"),
        "versions": first.get("versions"),
        "per_repeat_train_images_per_s": [r["train"]["images_per_s"] for r in ok],
    }
    return out


def _reference(m: dict[str, Any]) -> str | None:
    """The loop `m`'s is measured against: its engine's first (`Engine.speed_loops`), unless `m`
    is that loop itself (or its engine is not installed here)."""
    from fmnist import engines

    try:
        loops = engines.engine(m["engine"]).speed_loops
    except Exception:
        return None
    return loops[0] if loops and m["runner"] != loops[0] else None


def add_ratios(measurements: list[dict[str, Any]]) -> None:
    """A wrapping loop's training images/s over its engine's reference loop's (Lightning's Trainer
    over the same step as a plain loop), per variant and batch size."""
    ok = {(m["engine"], m["runner"], m["variant"], m["batch_size"]): m for m in measurements if m["status"] == "ok"}
    for m in measurements:
        reference = _reference(m)
        ref = ok.get((m["engine"], reference, m["variant"], m["batch_size"])) if reference else None
        if m["status"] == "ok" and ref:
            m["ratio_to_plain"] = m["train"]["images_per_s"]["median"] / ref["train"]["images_per_s"]["median"]


#: The confidence level of the interval around the median of the paired ratios.
RATIO_INTERVAL_LEVEL = 0.90


def median_interval(values: Sequence[float], level: float = RATIO_INTERVAL_LEVEL) -> dict[str, Any]:
    """The median of `values` with a distribution-free confidence interval for the true median:
    the order statistics (x_(k), x_(n+1-k)) for the largest k whose coverage,
    1 - 2 P(Binomial(n, 1/2) <= k - 1), is at least `level`. Exact for any continuous
    distribution and with nothing drawn at random, which suits the handful of pairs a benchmark
    affords; five values are the fewest for 90% (coverage 15/16, the interval min to max). With
    too few, `low`, `high` and `coverage` are None."""
    data = sorted(float(v) for v in values)
    n = len(data)
    if n == 0:
        raise ValueError("median of no values")
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be within (0, 1), got {level}")

    def coverage(k: int) -> float:
        return 1.0 - 2.0 * sum(math.comb(n, i) for i in range(k)) / 2.0**n

    k = 0
    while k + 1 <= (n + 1) // 2 and coverage(k + 1) >= level:
        k += 1
    out: dict[str, Any] = {"median": median(data), "low": None, "high": None, "level": level, "coverage": None, "n": n}
    if k:
        out.update(low=data[k - 1], high=data[n - k], coverage=coverage(k))
    return out


def paired_ratios(lightning: Sequence[dict[str, Any]], plain: Sequence[dict[str, Any]]) -> list[float | None]:
    """Pair i is repeat i of each loop (run back to back): the wrapping loop's (Lightning's) training
    images/s over the reference loop's; None where either did not finish."""
    out: list[float | None] = []
    for lit, ref in zip(lightning, plain):
        ok = lit.get("status") == "ok" and ref.get("status") == "ok"
        out.append(lit["train"]["images_per_s"] / ref["train"]["images_per_s"] if ok else None)
    return out


def add_paired_ratios(measurements: list[dict[str, Any]], repeats: dict[str, list[dict[str, Any]]]) -> None:
    """A wrapping loop's overhead from its pairs, per variant and batch size: `pair_ratios` (one per
    pair, None where one side failed), `pair_first` (the loop that ran first in each pair, from the
    repeats' `run_index`) and `ratio_to_plain_paired` (`median_interval` of the pairs' ratios).
    `repeats`: every repeat's result of each measurement, by `Measurement.key`."""
    from benchmarks.plan import Measurement

    for m in measurements:
        reference = _reference(m)
        if reference is None:
            continue
        own = repeats.get(Measurement(m["engine"], m["runner"], m["variant"], m["batch_size"]).key, [])
        plain = repeats.get(Measurement(m["engine"], reference, m["variant"], m["batch_size"]).key, [])
        if not plain:
            continue
        ratios = paired_ratios(own, plain)
        m["pair_ratios"] = ratios
        m["pair_first"] = [
            None
            if "run_index" not in lit or "run_index" not in ref
            else (m["runner"] if lit["run_index"] < ref["run_index"] else reference)
            for lit, ref in zip(own, plain)
        ]
        done = [r for r in ratios if r is not None]
        if done:
            m["ratio_to_plain_paired"] = median_interval(done)


def add_mfu(
    measurements: list[dict[str, Any]],
    flops_per_image: int,
    peak: dict[str, Any] | None,
    emulated: dict[str, str] | None = None,
) -> None:
    """Per successful measurement: `train_flops_per_image` (`benchmarks.flops` on the benchmark's
    config), `train_gflops_per_second` (median training images/s x that, 1e9 FLOP/s) and `mfu`,
    that over the GEMM peak (`benchmarks.peak`) of the variant's compute dtype (`peak_dtype`: the
    variant table's precision, bf16-mixed against bfloat16); `mfu` None where that peak is
    missing (the peak worker failed, or that dtype did). `emulated`: the dtypes the device
    emulates, with why (`benchmarks.peak.emulated_dtypes`): their rows get `emulated` and no MFU.
    No MFU either where the work outran the peak (`mfu_above_peak`): a peak it exceeds bounds
    nothing, and a share above 100% would say otherwise."""
    from benchmarks.peak import PEAK_DTYPE
    from benchmarks.variants import lookup

    for m in measurements:
        if m["status"] != "ok":
            continue
        achieved = m["train"]["images_per_s"]["median"] * flops_per_image / 1e9
        dtype = PEAK_DTYPE[lookup(m["variant"]).precision]
        best = ((peak or {}).get(dtype) or {}).get("gflops_per_second")
        m["train_flops_per_image"] = flops_per_image
        m["train_gflops_per_second"] = achieved
        m["peak_dtype"] = dtype
        m["mfu"] = achieved / best if best else None
        if dtype in (emulated or {}):
            m["emulated"] = emulated[dtype]
            m["mfu"] = None
        elif m["mfu"] is not None and m["mfu"] > 1.0:
            m["mfu_above_peak"] = m["mfu"]
            m["mfu"] = None
